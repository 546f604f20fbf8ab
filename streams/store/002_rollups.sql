-- Rolling sentiment aggregates that stay exact when Kafka re-delivers events.
--
-- review_facts: one slim row per review, keyed by event-time minute first, so
-- the rows of any (minute, product) or (minute, category) are one index range.
-- It deduplicates like the raw table (the newest processed_at wins) and carries
-- the write_id of the Store.write that inserted it: the roll-up statements find
-- the keys a write touched with `write_id = N`, which the minmax index answers
-- from that write's granules alone (ids only grow).
CREATE TABLE IF NOT EXISTS {db}.review_facts
(
    minute        DateTime('UTC'),     -- toStartOfMinute(event time)
    product_id    String,
    event_id      String,
    category      LowCardinality(String),
    label         LowCardinality(String),
    rating        UInt8,               -- 0 = no rating
    sentiment     Float32,             -- P(positive) − P(negative), in [−1, 1]
    processed_at  DateTime64(3, 'UTC'),
    write_id      UInt64,
    INDEX write_id_minmax write_id TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(processed_at)
PARTITION BY toYYYYMMDD(minute)
ORDER BY (minute, product_id, event_id)
SETTINGS ttl_only_drop_parts = 1;

-- Aggregates per (bucket, key). Each row is recomputed from review_facts FINAL
-- and inserted whole; the version is n, the number of distinct events, so the
-- most complete recompute of a key wins (a recompute that runs after raw TTL
-- removed some of its events never replaces the full row). Sums, not means,
-- so buckets compose: mean score = sentiment_sum / n, mean rating =
-- rating_sum / rating_n. sentiment_sum is Decimal so sums are exact and do not
-- depend on the order ClickHouse adds them in.
CREATE TABLE IF NOT EXISTS {db}.product_minute
(
    minute        DateTime('UTC'),
    product_id    String,
    n             UInt32,
    n_negative    UInt32,
    n_neutral     UInt32,
    n_positive    UInt32,
    rating_sum    UInt32,
    rating_n      UInt32,
    sentiment_sum Decimal64(6)
)
ENGINE = ReplacingMergeTree(n)
PARTITION BY toYYYYMMDD(minute)
ORDER BY (minute, product_id)
SETTINGS ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS {db}.category_minute
(
    minute        DateTime('UTC'),
    category      LowCardinality(String),
    n             UInt32,
    n_negative    UInt32,
    n_neutral     UInt32,
    n_positive    UInt32,
    rating_sum    UInt32,
    rating_n      UInt32,
    sentiment_sum Decimal64(6)
)
ENGINE = ReplacingMergeTree(n)
PARTITION BY toYYYYMMDD(minute)
ORDER BY (minute, category)
SETTINGS ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS {db}.product_hour
(
    hour          DateTime('UTC'),
    product_id    String,
    n             UInt32,
    n_negative    UInt32,
    n_neutral     UInt32,
    n_positive    UInt32,
    rating_sum    UInt32,
    rating_n      UInt32,
    sentiment_sum Decimal64(6)
)
ENGINE = ReplacingMergeTree(n)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, product_id);

CREATE TABLE IF NOT EXISTS {db}.category_hour
(
    hour          DateTime('UTC'),
    category      LowCardinality(String),
    n             UInt32,
    n_negative    UInt32,
    n_neutral     UInt32,
    n_positive    UInt32,
    rating_sum    UInt32,
    rating_n      UInt32,
    sentiment_sum Decimal64(6)
)
ENGINE = ReplacingMergeTree(n)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, category);

-- Reviews stored before this migration become facts (write_id 0), which
-- Store.migrate rolls up once the schema is current (a re-run inserts the
-- same rows again, and they collapse). The column list keeps this statement
-- valid on the tables as migration 003 leaves them.
INSERT INTO {db}.review_facts
    (minute, product_id, event_id, category, label, rating, sentiment, processed_at)
SELECT toStartOfMinute(ts), product_id, event_id, category, label, rating,
       p_positive - p_negative, processed_at
FROM {db}.reviews;
