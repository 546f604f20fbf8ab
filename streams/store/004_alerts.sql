-- Spike alerts (streams/alerts): what was sent, and what it was computed from.
--
-- alerts: one row per alert event sent (firing, reminder, resolved), keyed so
-- that evaluating the same window again after a crash writes the same row.
-- alert_windows: the exact counts each closed window was tested with, plus one
-- marker row (scope 'window') per evaluated window. On start the detector is
-- rebuilt from these rows, so its state survives restarts and does not change
-- when late events later add to a window's aggregates.

CREATE TABLE IF NOT EXISTS {db}.alerts
(
    alert_id      String,
    status        LowCardinality(String),
    severity      LowCardinality(String),
    rule          LowCardinality(String),
    product_id    String,
    category      String,
    window_start  DateTime64(3, 'UTC'),
    window_end    DateTime64(3, 'UTC'),
    started_at    DateTime64(3, 'UTC'),
    p_value       Float64,
    body          String
)
ENGINE = ReplacingMergeTree
ORDER BY (alert_id, window_end, status);

CREATE TABLE IF NOT EXISTS {db}.alert_windows
(
    size          LowCardinality(String),
    window_start  DateTime64(3, 'UTC'),
    window_end    DateTime64(3, 'UTC'),
    scope         LowCardinality(String),
    key           String,
    category      String,
    n             UInt32,
    negative      UInt32
)
ENGINE = ReplacingMergeTree
ORDER BY (size, window_end, scope, key);
