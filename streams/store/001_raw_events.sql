-- Raw enriched events. ReplacingMergeTree keyed by (product_id, event_id):
-- a batch Kafka re-delivers lands again but collapses to one row, and every
-- query reads these tables with FINAL, so each event counts once.
CREATE TABLE IF NOT EXISTS {db}.reviews
(
    event_id      String,
    product_id    String,
    category      LowCardinality(String),
    user_id       String,
    lang          LowCardinality(String),
    text          String,
    rating        UInt8,            -- 0 = no rating
    label         LowCardinality(String),
    score         Float32,
    p_negative    Float32,
    p_neutral     Float32,
    p_positive    Float32,
    model_name    LowCardinality(String),
    model_version LowCardinality(String),
    ts            DateTime64(3, 'UTC'),
    processed_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(processed_at)
ORDER BY (product_id, event_id);

CREATE TABLE IF NOT EXISTS {db}.questions
(
    event_id      String,
    product_id    String,
    user_id       String,
    text          String,
    model_name    LowCardinality(String),
    model_version LowCardinality(String),
    ts            DateTime64(3, 'UTC'),
    processed_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(processed_at)
ORDER BY (product_id, event_id);
