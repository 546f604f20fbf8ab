-- Shadow scoring (streams/service/shadow.py): a candidate review model scores a
-- sample of reviews next to the live one; one row per sampled review holds both
-- results, for /api/models' agreement and label shift per window (event time).
--
-- Identity as the raw tables' (migration 003): one row per event_id,
-- ReplacingMergeTree(version), version = processed_at (ms) in the high 64 bits
-- and a content hash in the low 64, read with FINAL: a re-delivered review
-- counts once, its latest version wins.
CREATE TABLE IF NOT EXISTS {db}.shadow_scores
(
    event_id            String,
    product_id          String,
    ts                  DateTime64(3, 'UTC'),
    model_name          LowCardinality(String),
    model_version       LowCardinality(String),
    label               LowCardinality(String),
    p_negative          Float32,
    p_neutral           Float32,
    p_positive          Float32,
    candidate_name      LowCardinality(String),
    candidate_version   LowCardinality(String),
    candidate_label     LowCardinality(String),
    candidate_p_negative Float32,
    candidate_p_neutral  Float32,
    candidate_p_positive Float32,
    processed_at        DateTime64(3, 'UTC'),
    content_hash        UInt64,
    version             UInt128 DEFAULT bitOr(bitShiftLeft(toUInt128(toUnixTimestamp64Milli(processed_at)), 64), toUInt128(content_hash))
)
ENGINE = ReplacingMergeTree(version)
ORDER BY event_id;
