-- Raw answers of joint surveys that do not share them: they stay here, at
-- the collecting centre, and only per-question counts enter the survey
-- document. One answer per respondent organisation (never a person).

CREATE TABLE survey_answers (
    survey     TEXT NOT NULL,
    -- The respondent organisation's key in the survey's population.
    respondent TEXT NOT NULL,
    -- The questionnaire version the answer was taken on, and the survey
    -- document's heads at that moment (hex, sorted, comma-separated).
    version    INTEGER NOT NULL,
    heads      TEXT NOT NULL,
    -- JSON object: question code -> answer value.
    answers    TEXT NOT NULL,
    answered_at INTEGER NOT NULL,
    PRIMARY KEY (survey, respondent)
) STRICT;

-- Codes applied to the free-text answers kept here.
CREATE TABLE survey_codings (
    survey     TEXT NOT NULL,
    respondent TEXT NOT NULL,
    question   TEXT NOT NULL,
    -- `list:code`, e.g. determinant_layers:reseaux_sociaux.
    code       TEXT NOT NULL,
    PRIMARY KEY (survey, respondent, question, code),
    FOREIGN KEY (survey, respondent) REFERENCES survey_answers (survey, respondent) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
