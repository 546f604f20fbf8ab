-- Questions carry what the question model made of them: the intent, the FAQ
-- answer chosen (or none: a human must answer) and the question model's name
-- and version (model_name/model_version, which until now stayed empty).
--
-- Identity and versioning stay as migration 003 set them: one row per
-- event_id, ReplacingMergeTree(version), version = processed_at (ms) in the
-- high 64 bits and the content hash in the low 64. The content hash now also
-- covers these columns (QUESTION_CONTENT in rollup.py); rows stored before
-- keep theirs and read as not scored: intent '', scores 0, needs_human 0.
ALTER TABLE {db}.questions
    ADD COLUMN IF NOT EXISTS intent       LowCardinality(String) DEFAULT '' AFTER text,
    ADD COLUMN IF NOT EXISTS intent_score Float32 DEFAULT 0 AFTER intent,
    ADD COLUMN IF NOT EXISTS faq_id       String DEFAULT '' AFTER intent_score,
    ADD COLUMN IF NOT EXISTS answer_score Float32 DEFAULT 0 AFTER faq_id,
    ADD COLUMN IF NOT EXISTS needs_human  UInt8 DEFAULT 0 AFTER answer_score;
