-- The aliases of a record (duplicates merged into it): a survivor's
-- holdings include its aliases', so a search by centre and a notice reach
-- them through this index.
CREATE INDEX catalogue_merged_into ON catalogue (merged_into)
    WHERE merged_into IS NOT NULL;
