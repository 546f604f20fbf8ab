-- How far each input partition has been stored in event time: the latest review
-- ts written from it. Spike alerts close a window only once every partition has
-- passed it (the lowest of these, minus the allowed lateness), so a partition
-- lagging behind — a worker catching up after a restart, a slow consumer — never
-- has its reviews left out of a window that closed without them.

CREATE TABLE IF NOT EXISTS {db}.partition_progress
(
    topic      String,
    partition  UInt32,
    max_ts     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(max_ts)
ORDER BY (topic, partition);
