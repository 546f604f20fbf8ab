-- Event identity: event_id names one event across the whole store, and its
-- highest version wins (processed_at in the high 64 bits, a hash of the row's
-- content in the low 64, see streams/store/__init__.py). The raw tables are
-- rebuilt keyed by event_id alone, review_facts and the aggregates get the
-- version columns their new engines need, and Store.migrate rebuilds the
-- aggregates from the facts afterwards.
--
-- Each rebuild is "drop the spare, create it, copy, exchange, drop the spare":
-- a run cut short anywhere can be run again, and the copy reads only columns
-- both the old and the new table have.

DROP TABLE IF EXISTS {db}.reviews_v3;
CREATE TABLE {db}.reviews_v3
(
    event_id      String,
    product_id    String,
    category      LowCardinality(String),
    user_id       String,
    lang          LowCardinality(String),
    text          String,
    rating        UInt8,
    label         LowCardinality(String),
    score         Float32,
    p_negative    Float32,
    p_neutral     Float32,
    p_positive    Float32,
    model_name    LowCardinality(String),
    model_version LowCardinality(String),
    ts            DateTime64(3, 'UTC'),
    processed_at  DateTime64(3, 'UTC'),
    content_hash  UInt64,
    version       UInt128 DEFAULT bitOr(bitShiftLeft(toUInt128(toUnixTimestamp64Milli(processed_at)), 64), toUInt128(content_hash)),
    INDEX product_bloom product_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(version)
ORDER BY event_id;

-- Rows stored before this migration are ranked by ClickHouse's cityHash64 of
-- their content (the writer ranks new rows by BLAKE2b): deterministic either way.
INSERT INTO {db}.reviews_v3
    (event_id, product_id, category, user_id, lang, text, rating, label, score,
     p_negative, p_neutral, p_positive, model_name, model_version, ts, processed_at, content_hash)
SELECT event_id, product_id, category, user_id, lang, text, rating, label, score,
       p_negative, p_neutral, p_positive, model_name, model_version, ts, processed_at,
       cityHash64(product_id, category, user_id, lang, text, rating, label, score,
                  p_negative, p_neutral, p_positive, model_name, model_version, ts)
FROM {db}.reviews;

EXCHANGE TABLES {db}.reviews_v3 AND {db}.reviews;
DROP TABLE {db}.reviews_v3;

DROP TABLE IF EXISTS {db}.questions_v3;
CREATE TABLE {db}.questions_v3
(
    event_id      String,
    product_id    String,
    user_id       String,
    text          String,
    model_name    LowCardinality(String),
    model_version LowCardinality(String),
    ts            DateTime64(3, 'UTC'),
    processed_at  DateTime64(3, 'UTC'),
    content_hash  UInt64,
    version       UInt128 DEFAULT bitOr(bitShiftLeft(toUInt128(toUnixTimestamp64Milli(processed_at)), 64), toUInt128(content_hash))
)
ENGINE = ReplacingMergeTree(version)
ORDER BY event_id;

INSERT INTO {db}.questions_v3
    (event_id, product_id, user_id, text, model_name, model_version, ts, processed_at, content_hash)
SELECT event_id, product_id, user_id, text, model_name, model_version, ts, processed_at,
       cityHash64(product_id, user_id, text, model_name, model_version, ts)
FROM {db}.questions;

EXCHANGE TABLES {db}.questions_v3 AND {db}.questions;
DROP TABLE {db}.questions_v3;

-- review_facts: one row per event and (minute, product); a version that lost
-- to one elsewhere is hidden by a deleted row versioned by the winner, so
-- FINAL reads the winning version of every event and nothing else. Rebuilt
-- from the raw table, which now holds exactly the winners.
DROP TABLE IF EXISTS {db}.review_facts_v3;
CREATE TABLE {db}.review_facts_v3
(
    minute        DateTime('UTC'),     -- toStartOfMinute(event time)
    product_id    String,
    event_id      String,
    category      LowCardinality(String),
    label         LowCardinality(String),
    rating        UInt8,               -- 0 = no rating
    sentiment     Float32,             -- P(positive) − P(negative), in [−1, 1]
    processed_at  DateTime64(3, 'UTC'),
    content_hash  UInt64,
    version       UInt128 DEFAULT bitOr(bitShiftLeft(toUInt128(toUnixTimestamp64Milli(processed_at)), 64), toUInt128(content_hash)),
    is_deleted    UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMMDD(minute)
ORDER BY (minute, product_id, event_id)
SETTINGS ttl_only_drop_parts = 1;

EXCHANGE TABLES {db}.review_facts_v3 AND {db}.review_facts;
DROP TABLE {db}.review_facts_v3;

INSERT INTO {db}.review_facts
    (minute, product_id, event_id, category, label, rating, sentiment, processed_at, content_hash)
SELECT toStartOfMinute(ts), product_id, event_id, category, label, rating,
       p_positive - p_negative, processed_at, content_hash
FROM {db}.reviews FINAL;

-- review_versions: where every version of an event lies, looked up by event
-- id; a write tombstones and re-rolls the cells of its events' other versions.
CREATE TABLE IF NOT EXISTS {db}.review_versions
(
    event_id      String,
    processed_at  DateTime64(3, 'UTC'),
    content_hash  UInt64,
    version       UInt128 DEFAULT bitOr(bitShiftLeft(toUInt128(toUnixTimestamp64Milli(processed_at)), 64), toUInt128(content_hash)),
    minute        DateTime('UTC'),
    product_id    String,
    category      LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (event_id, version);

INSERT INTO {db}.review_versions (event_id, processed_at, content_hash, minute, product_id, category)
SELECT event_id, processed_at, content_hash, toStartOfMinute(ts), product_id, category
FROM {db}.reviews FINAL;

-- review_writes: the event ids of each write, for its tombstones and roll-ups.
CREATE TABLE IF NOT EXISTS {db}.review_writes
(
    write_id      UInt64,
    event_id      String,
    written_at    DateTime('UTC') DEFAULT now()
)
ENGINE = MergeTree
ORDER BY write_id
TTL written_at + toIntervalDay(1);

-- Aggregates per (bucket, key), versioned by computed_at (the server's clock
-- in ns when the recompute began): the latest recompute of a key wins, and a
-- key whose events all moved away holds a deleted row. Rows are copied with
-- computed_at 0, so any recompute replaces them.
DROP TABLE IF EXISTS {db}.product_minute_v3;
CREATE TABLE {db}.product_minute_v3
(
    minute        DateTime('UTC'),
    product_id    String,
    n             UInt32,
    n_negative    UInt32,
    n_neutral     UInt32,
    n_positive    UInt32,
    rating_sum    UInt32,
    rating_n      UInt32,
    sentiment_sum Decimal64(6),
    computed_at   UInt64,
    is_deleted    UInt8
)
ENGINE = ReplacingMergeTree(computed_at, is_deleted)
PARTITION BY toYYYYMMDD(minute)
ORDER BY (minute, product_id)
SETTINGS ttl_only_drop_parts = 1;

INSERT INTO {db}.product_minute_v3
    (minute, product_id, n, n_negative, n_neutral, n_positive, rating_sum, rating_n, sentiment_sum)
SELECT minute, product_id, n, n_negative, n_neutral, n_positive, rating_sum, rating_n, sentiment_sum
FROM {db}.product_minute FINAL;

EXCHANGE TABLES {db}.product_minute_v3 AND {db}.product_minute;
DROP TABLE {db}.product_minute_v3;

DROP TABLE IF EXISTS {db}.category_minute_v3;
CREATE TABLE {db}.category_minute_v3
(
    minute        DateTime('UTC'),
    category      LowCardinality(String),
    n             UInt32,
    n_negative    UInt32,
    n_neutral     UInt32,
    n_positive    UInt32,
    rating_sum    UInt32,
    rating_n      UInt32,
    sentiment_sum Decimal64(6),
    computed_at   UInt64,
    is_deleted    UInt8
)
ENGINE = ReplacingMergeTree(computed_at, is_deleted)
PARTITION BY toYYYYMMDD(minute)
ORDER BY (minute, category)
SETTINGS ttl_only_drop_parts = 1;

INSERT INTO {db}.category_minute_v3
    (minute, category, n, n_negative, n_neutral, n_positive, rating_sum, rating_n, sentiment_sum)
SELECT minute, category, n, n_negative, n_neutral, n_positive, rating_sum, rating_n, sentiment_sum
FROM {db}.category_minute FINAL;

EXCHANGE TABLES {db}.category_minute_v3 AND {db}.category_minute;
DROP TABLE {db}.category_minute_v3;

DROP TABLE IF EXISTS {db}.product_hour_v3;
CREATE TABLE {db}.product_hour_v3
(
    hour          DateTime('UTC'),
    product_id    String,
    n             UInt32,
    n_negative    UInt32,
    n_neutral     UInt32,
    n_positive    UInt32,
    rating_sum    UInt32,
    rating_n      UInt32,
    sentiment_sum Decimal64(6),
    computed_at   UInt64,
    is_deleted    UInt8
)
ENGINE = ReplacingMergeTree(computed_at, is_deleted)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, product_id);

INSERT INTO {db}.product_hour_v3
    (hour, product_id, n, n_negative, n_neutral, n_positive, rating_sum, rating_n, sentiment_sum)
SELECT hour, product_id, n, n_negative, n_neutral, n_positive, rating_sum, rating_n, sentiment_sum
FROM {db}.product_hour FINAL;

EXCHANGE TABLES {db}.product_hour_v3 AND {db}.product_hour;
DROP TABLE {db}.product_hour_v3;

DROP TABLE IF EXISTS {db}.category_hour_v3;
CREATE TABLE {db}.category_hour_v3
(
    hour          DateTime('UTC'),
    category      LowCardinality(String),
    n             UInt32,
    n_negative    UInt32,
    n_neutral     UInt32,
    n_positive    UInt32,
    rating_sum    UInt32,
    rating_n      UInt32,
    sentiment_sum Decimal64(6),
    computed_at   UInt64,
    is_deleted    UInt8
)
ENGINE = ReplacingMergeTree(computed_at, is_deleted)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, category);

INSERT INTO {db}.category_hour_v3
    (hour, category, n, n_negative, n_neutral, n_positive, rating_sum, rating_n, sentiment_sum)
SELECT hour, category, n, n_negative, n_neutral, n_positive, rating_sum, rating_n, sentiment_sum
FROM {db}.category_hour FINAL;

EXCHANGE TABLES {db}.category_hour_v3 AND {db}.category_hour;
DROP TABLE {db}.category_hour_v3
