//! The federation's benchmarks (`clps-bench-wallonie`,
//! `clps-bench-granularity`, `clps-bench-search`): synthetic but realistic
//! catalogue records, plus the small timing and memory helpers they share.
//!
//! Records look like a CLPS documentation base: French titles and ~200
//! character descriptions drawn from a health-promotion vocabulary with a
//! Zipf-like frequency (so `santé`, `de`, `jeunes` are in a large share of the
//! records, as in the real base) mixed with invented tool names (rare tokens,
//! like `Emotika`), Belgian organisations as creator and publisher, 1 to 3
//! themes, 0 to 2 publics, and 1 or 2 centres holding copies. Everything is
//! drawn from a seeded ChaCha generator: the same seed gives the same records.

use std::collections::BTreeSet;
use std::time::Duration;

use clps_model::docs::catalogue::{Availability, Holding, RecordFields, RecordId};
use clps_model::docs::{CatalogueDoc, DocError};
use clps_model::vocab;
use clps_model::{CentreActor, CentreId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Content words of the domain, most frequent first (the order sets the
/// Zipf weights). Accents are kept: search must find them without.
const WORDS: &[&str] = &[
    "santé",
    "jeunes",
    "prévention",
    "promotion",
    "enfants",
    "éducation",
    "vie",
    "outil",
    "guide",
    "alimentation",
    "adolescents",
    "école",
    "émotions",
    "parents",
    "alcool",
    "relations",
    "affective",
    "sexuelle",
    "pédagogique",
    "jeu",
    "activité",
    "physique",
    "bien-être",
    "drogues",
    "tabac",
    "famille",
    "mentale",
    "harcèlement",
    "violence",
    "estime",
    "soi",
    "assuétudes",
    "écrans",
    "animation",
    "projet",
    "professionnels",
    "enseignants",
    "citoyenneté",
    "égalité",
    "genre",
    "corps",
    "hygiène",
    "sommeil",
    "stress",
    "communication",
    "dossier",
    "cannabis",
    "environnement",
    "logement",
    "précarité",
    "inégalités",
    "sociales",
    "communautaire",
    "quartier",
    "seniors",
    "vieillissement",
    "handicap",
    "interculturalité",
    "migrants",
    "parentalité",
    "petite",
    "enfance",
    "grossesse",
    "contraception",
    "consentement",
    "sida",
    "dépistage",
    "vaccination",
    "covid",
    "pandémie",
    "diabète",
    "cancer",
    "médicaments",
    "dents",
    "fruits",
    "légumes",
    "sucre",
    "eau",
    "sport",
    "mouvement",
    "colère",
    "peur",
    "joie",
    "tristesse",
    "écoute",
    "confiance",
    "respect",
    "solidarité",
    "empathie",
    "conflits",
    "médiation",
    "risques",
    "réduction",
    "dépendances",
    "hasard",
    "argent",
    "internet",
    "réseaux",
    "sociaux",
    "smartphone",
    "vidéo",
    "photo",
    "expression",
    "photolangage",
    "théâtre",
    "musique",
    "lecture",
    "album",
    "bande",
    "dessinée",
    "exposition",
    "fiches",
    "repères",
    "méthodologie",
    "évaluation",
    "participation",
    "démarche",
    "atelier",
    "formation",
    "accompagnement",
    "réseau",
    "partenariat",
    "territoire",
    "milieu",
    "scolaire",
    "travail",
    "emploi",
    "chômage",
    "pauvreté",
    "alimentaire",
    "obésité",
    "surpoids",
    "cuisine",
    "recettes",
    "goût",
    "plaisir",
    "cinq",
    "sens",
    "nature",
    "pollution",
    "air",
    "bruit",
    "soleil",
    "peau",
    "accidents",
    "domestiques",
    "sécurité",
    "routière",
    "premiers",
    "secours",
    "maltraitance",
    "discriminations",
    "stéréotypes",
    "identité",
    "adolescence",
    "puberté",
    "amour",
    "amitié",
    "sexualité",
    "pornographie",
    "IST",
    "VIH",
    "hépatites",
    "deuil",
    "suicide",
    "burn-out",
    "résilience",
    "pleine",
    "conscience",
    "relaxation",
    "respiration",
    "jardin",
    "potager",
    "collation",
    "déjeuner",
    "cantine",
    "récréation",
    "cour",
    "maternelle",
    "primaire",
    "secondaire",
    "supérieur",
    "étudiants",
    "aînés",
    "intergénérationnel",
    "patients",
    "soignants",
    "médecine",
    "générale",
    "hôpital",
    "maison",
    "médicale",
    "planning",
    "familial",
    "CPAS",
    "mutualité",
    "Wallonie",
    "Bruxelles",
    "Charleroi",
    "Namur",
    "Liège",
    "Hainaut",
    "Luxembourg",
    "Brabant",
    "Mons",
    "Verviers",
    "Huy",
    "Thuin",
];

/// Function words, very common in titles and descriptions: the tokens that
/// make full-text ranking expensive when a query contains one.
const CONNECTORS: &[&str] = &[
    "de", "la", "les", "et", "des", "du", "pour", "en", "à", "le", "un", "une", "au", "aux",
    "avec", "sur", "dans", "par", "l'", "d'",
];

/// Heads of titles.
const KINDS: &[&str] = &[
    "Guide",
    "Outil",
    "Jeu",
    "Dossier",
    "Mallette",
    "Carnet",
    "Kit",
    "Brochure",
    "Affiche",
    "Livret",
    "Film",
    "Fiches",
    "Exposition",
    "Cahier",
    "Répertoire",
    "Balises",
];

const ORGANISATIONS: &[&str] = &[
    "Question Santé",
    "Cultures&Santé",
    "Infor-Drogues",
    "Prospective Jeunesse",
    "Fédération des centres de planning familial",
    "O'YAS",
    "Sida Sol",
    "Plate-forme prévention sida",
    "Fares",
    "SIPS",
    "Latitude Jeunes",
    "Solidaris",
    "Mutualité chrétienne",
    "Office de la Naissance et de l'Enfance",
    "Sciensano",
    "Observatoire de la santé du Hainaut",
    "Province de Namur",
    "Ligue des familles",
    "Fondation contre le cancer",
    "Univers santé",
    "Modus Vivendi",
    "Éducation Santé",
    "Promo Santé & Médecine Générale",
    "Croix-Rouge de Belgique",
    "Yapaka",
    "Vie Féminine",
    "Les Pissenlits",
    "Le Grain",
    "Média Animation",
    "APES-ULiège",
    "RESO UCLouvain",
    "Fédération Wallonie-Bruxelles",
    "AVIQ",
    "CPAS de Charleroi",
    "CLPS de Charleroi-Thuin",
    "CLPS de Namur",
    "CLPS du Brabant wallon",
    "CLPS de Liège",
    "CLPS de Mons-Soignies",
    "CLPS du Luxembourg",
    "CLPS de Huy-Waremme",
    "CLPS de Verviers",
    "CLPS de Hainaut occidental",
    "CBPS Bruxelles",
    "Centre d'Éducation du Patient",
    "Éditions Chronique Sociale",
    "Éditions De Boeck",
    "Casterman",
    "L'École des loisirs",
    "Bayard Jeunesse",
];

const PUBLICS: &[&str] = &[
    "enfants",
    "adolescents",
    "adultes",
    "enseignants",
    "parents",
    "professionnels",
    "seniors",
    "animateurs",
];

/// Document types with their rough share of a documentation base.
const DOC_TYPES: &[(&str, u32)] = &[
    ("ouvrage", 30),
    ("dossier", 15),
    ("outil_pedagogique", 15),
    ("brochure", 12),
    ("article_revue", 10),
    ("affiche", 6),
    ("livre_enfants", 6),
    ("dvd", 4),
    ("exposition", 2),
];

/// One generated record: what a centre would catalogue.
#[derive(Debug, Clone)]
pub struct GenRecord {
    pub id: RecordId,
    /// Index in [`Generator::centres`] of the centre that creates it.
    pub creator: usize,
    pub fields: RecordFields,
    /// (centre index, holding), the creating centre first.
    pub holdings: Vec<(usize, Holding)>,
    /// Commit time of its changes: records are catalogued ten minutes apart.
    pub time: i64,
}

/// Draws records, words and queries from one seeded generator.
pub struct Generator {
    rng: ChaCha8Rng,
    centres: Vec<CentreId>,
    themes: Vec<String>,
    /// Invented tool names, the long tail of the vocabulary.
    rare: Vec<String>,
    /// Cumulative Zipf weights over `WORDS`.
    cumulative: Vec<f64>,
    next_local: Vec<u64>,
    n_records: i64,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let syllables = [
            "ka", "lo", "mi", "ra", "te", "vo", "si", "nu", "pa", "zé", "bri", "cho", "dan", "fé",
            "gua", "ji", "ko", "lum", "mar", "né", "or", "pli", "qua", "ros", "sta", "tri", "ul",
            "vil", "wa", "xe", "yo", "zu",
        ];
        let mut rare = BTreeSet::new();
        while rare.len() < 30_000 {
            let n = rng.random_range(2..=4);
            let word: String = (0..n)
                .map(|_| syllables[rng.random_range(0..syllables.len())])
                .collect();
            rare.insert(word);
        }
        let mut total = 0.0;
        let cumulative = (0..WORDS.len())
            .map(|rank| {
                total += 1.0 / (rank as f64 + 3.0);
                total
            })
            .collect();
        let centres = CentreId::all_ids();
        Generator {
            rng,
            next_local: vec![0; centres.len()],
            n_records: 0,
            centres,
            themes: vocab::get().themes.codes().map(str::to_owned).collect(),
            rare: rare.into_iter().collect(),
            cumulative,
        }
    }

    pub fn centres(&self) -> &[CentreId] {
        &self.centres
    }

    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// A content word, Zipf-distributed.
    pub fn word(&mut self) -> &'static str {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let x = self.rng.random_range(0.0..total);
        let i = self.cumulative.partition_point(|c| *c < x);
        WORDS[i.min(WORDS.len() - 1)]
    }

    /// An invented tool name (a rare token).
    pub fn rare_word(&mut self) -> String {
        let i = self.rng.random_range(0..self.rare.len());
        self.rare[i].clone()
    }

    fn connector(&mut self) -> &'static str {
        CONNECTORS[self.rng.random_range(0..CONNECTORS.len())]
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.rng.random_range(0..list.len())]
    }

    fn capitalised(word: &str) -> String {
        let mut chars = word.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => String::new(),
        }
    }

    fn title(&mut self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.rng.random_bool(0.25) {
            parts.push(Self::capitalised(&self.rare_word()));
            parts.push(":".to_owned());
        }
        if self.rng.random_bool(0.5) {
            parts.push(self.pick(KINDS).to_owned());
            parts.push(self.connector().to_owned());
        }
        let n = self.rng.random_range(2..=5);
        for i in 0..n {
            if i > 0 && self.rng.random_bool(0.5) {
                parts.push(self.connector().to_owned());
            }
            if self.rng.random_bool(0.1) {
                parts.push(self.rare_word());
            } else {
                parts.push(self.word().to_owned());
            }
        }
        let title = parts.join(" ").replace("' ", "'");
        Self::capitalised(&title)
    }

    fn description(&mut self) -> String {
        let target = self.rng.random_range(170..=230);
        let mut out = String::new();
        let mut sentence_len = 0;
        while out.chars().count() < target {
            let word = match self.rng.random_range(0..10) {
                0..=3 => self.connector().to_owned(),
                4 => self.rare_word(),
                _ => self.word().to_owned(),
            };
            if sentence_len == 0 {
                out.push_str(&Self::capitalised(&word));
            } else {
                if !out.ends_with('\'') {
                    out.push(' ');
                }
                out.push_str(&word);
            }
            sentence_len += 1;
            if sentence_len > 6 && self.rng.random_bool(0.15) {
                out.push_str(". ");
                sentence_len = 0;
            }
        }
        let mut out = out.trim_end().trim_end_matches('.').to_owned();
        out.push('.');
        out
    }

    fn doc_type(&mut self) -> &'static str {
        let total: u32 = DOC_TYPES.iter().map(|(_, w)| w).sum();
        let mut x = self.rng.random_range(0..total);
        for (code, w) in DOC_TYPES {
            if x < *w {
                return code;
            }
            x -= w;
        }
        "ouvrage"
    }

    fn holding(&mut self, doc_type: &str) -> Holding {
        let prefix = match doc_type {
            "outil_pedagogique" => "OP",
            "dvd" => "DVD",
            "affiche" => "AFF",
            "exposition" => "EXP",
            _ => "DOC",
        };
        let letters: String = (0..3)
            .map(|_| char::from(b'A' + self.rng.random_range(0..26u8)))
            .collect();
        Holding {
            copies: self.rng.random_range(1..=3),
            shelf_mark: format!("{prefix}-{letters}-{}", self.rng.random_range(1..1000)),
            availability: if self.rng.random_bool(0.9) {
                Availability::Available
            } else {
                Availability::OnLoan
            },
        }
    }

    /// The next record. Its id is the creating centre's next local number,
    /// as an import from that centre's library system names it.
    pub fn record(&mut self) -> GenRecord {
        // Charleroi-Thuin holds about a tenth of the base (20,319 of ~200,000).
        let creator = self.rng.random_range(0..self.centres.len());
        self.next_local[creator] += 1;
        let id = RecordId::from_local(&self.centres[creator], self.next_local[creator]);
        self.record_with_id(id, creator)
    }

    /// A record with a given id and creating centre.
    pub fn record_with_id(&mut self, id: RecordId, creator: usize) -> GenRecord {
        let doc_type = self.doc_type();
        let n_themes = self.rng.random_range(1..=3);
        let mut themes = BTreeSet::new();
        while themes.len() < n_themes {
            let i = self.rng.random_range(0..self.themes.len());
            themes.insert(self.themes[i].clone());
        }
        let mut publics = BTreeSet::new();
        for _ in 0..self.rng.random_range(0..=2) {
            publics.insert(self.pick(PUBLICS).to_owned());
        }
        let creator_org = self.pick(ORGANISATIONS).to_owned();
        let fields = RecordFields {
            title: self.title(),
            doc_type: doc_type.to_owned(),
            creator: if self.rng.random_bool(0.2) {
                format!("{creator_org} et {}", self.pick(ORGANISATIONS))
            } else {
                creator_org
            },
            publisher: self.pick(ORGANISATIONS).to_owned(),
            year: Some(self.rng.random_range(1985..=2024)),
            themes,
            publics,
            age_min: None,
            age_max: None,
            description: self.description(),
            conditions_of_use: String::new(),
            languages: BTreeSet::from(["fr".to_owned()]),
            links: BTreeSet::new(),
        };
        let mut holdings = vec![(creator, self.holding(doc_type))];
        if self.rng.random_bool(0.3) {
            let other =
                (creator + self.rng.random_range(1..self.centres.len())) % self.centres.len();
            holdings.push((other, self.holding(doc_type)));
        }
        self.n_records += 1;
        GenRecord {
            id,
            creator,
            fields,
            holdings,
            time: 1_500_000_000 + 600 * self.n_records,
        }
    }

    /// A theme code.
    pub fn theme(&mut self) -> String {
        let i = self.rng.random_range(0..self.themes.len());
        self.themes[i].clone()
    }

    /// A document-type code, weighted like the records.
    pub fn any_doc_type(&mut self) -> String {
        self.doc_type().to_owned()
    }

    pub fn public(&mut self) -> String {
        self.pick(PUBLICS).to_owned()
    }

    pub fn connector_word(&mut self) -> &'static str {
        self.connector()
    }
}

/// The centre actors, one instance each, as the ten nodes would write.
pub fn actors(generator: &Generator) -> Vec<CentreActor> {
    generator
        .centres()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut instance = *b"node0000";
            instance[7] = u8::try_from(i).unwrap_or(u8::MAX);
            CentreActor::new(c.clone(), instance)
        })
        .collect()
}

/// Switches the actor a document writes with; a no-op when it already is.
pub fn as_actor(doc: CatalogueDoc, actor: &CentreActor) -> Result<CatalogueDoc, DocError> {
    if doc.actor() == actor {
        return Ok(doc);
    }
    let bucket = doc.bucket();
    CatalogueDoc::from_automerge(bucket, doc.into_automerge(), actor.clone())
}

/// Writes one generated record the way a node does: the record in one
/// change, then each holding centre's holding in its own change.
pub fn write_record(
    doc: CatalogueDoc,
    record: &GenRecord,
    actors: &[CentreActor],
) -> Result<CatalogueDoc, DocError> {
    let mut doc = as_actor(doc, &actors[record.creator])?;
    doc.set_commit_time(record.time);
    doc.create_record(&record.id, &record.fields)?;
    for (centre, holding) in &record.holdings {
        doc = as_actor(doc, &actors[*centre])?;
        doc.set_commit_time(record.time);
        doc.set_holding(&record.id, holding)?;
    }
    Ok(doc)
}

/// Resident memory of this process, from `/proc/self/status`, in bytes.
pub fn rss_bytes(field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0)
}

/// Milliseconds the calling thread has spent on a CPU, from
/// `/proc/thread-self/schedstat` (0 where unavailable). Unlike wall time it
/// does not grow when other work shares the machine.
pub fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        })
        .map_or(0.0, |ns| ns as f64 / 1e6)
}

/// Milliseconds, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `nproc` and the CPU model, for reports.
pub fn machine() -> (usize, String) {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    (cpus, model)
}

/// The 1-minute load average, from `/proc/loadavg`: other work on the
/// machine slows every figure down, so reports give it.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|l| l.parse().ok()))
        .unwrap_or(0.0)
}

/// A directory under the system temp dir, removed when dropped unless kept.
pub struct TempDir {
    pub path: std::path::PathBuf,
    pub keep: bool,
}

impl TempDir {
    pub fn new(prefix: &str) -> std::io::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path, keep: false })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Builds every document, spread over the cores (documents are
/// independent), handing each to `built` (with its layout index) as soon as
/// it is done; `built` returns false to stop. Returns the build threads'
/// summed time on a CPU (ms).
pub fn build_docs_each(
    layout: &[(u16, Vec<GenRecord>)],
    actors: &[CentreActor],
    built: &(dyn Fn(usize, CatalogueDoc) -> bool + Sync),
) -> anyhow::Result<f64> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(layout.len().max(1));
    let results: Vec<anyhow::Result<f64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> anyhow::Result<f64> {
                    let started = thread_cpu_ms();
                    for (i, (bucket, records)) in layout.iter().enumerate().skip(t).step_by(threads)
                    {
                        let first = records.first().map_or(0, |r| r.creator);
                        let mut doc = CatalogueDoc::create(*bucket, actors[first].clone())?;
                        for record in records {
                            doc = write_record(doc, record, actors)?;
                        }
                        if !built(i, doc) {
                            anyhow::bail!("the documents built are no longer wanted");
                        }
                    }
                    Ok(thread_cpu_ms() - started)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a build thread panicked")))
            })
            .collect()
    });
    results.into_iter().sum()
}

/// Builds every document, spread over the cores. Returns the documents in
/// layout order and the threads' summed time on a CPU.
pub fn build_docs(
    layout: &[(u16, Vec<GenRecord>)],
    actors: &[CentreActor],
) -> anyhow::Result<(Vec<CatalogueDoc>, f64)> {
    let docs: std::sync::Mutex<Vec<Option<CatalogueDoc>>> =
        std::sync::Mutex::new((0..layout.len()).map(|_| None).collect());
    let cpu_ms = build_docs_each(layout, actors, &|i, doc| {
        docs.lock().map(|mut d| d[i] = Some(doc)).is_ok()
    })?;
    let docs = docs
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a build thread panicked"))?
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| anyhow::anyhow!("a document was not built"))?;
    Ok((docs, cpu_ms))
}
