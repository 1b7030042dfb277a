-- Snapshots of the projections (SPEC §4.6), range-partitioned by month on
-- taken_at like the log, with a DEFAULT partition.

CREATE TABLE IF NOT EXISTS snapshots (
    snapshot_id     uuid        NOT NULL,
    taken_at        timestamptz NOT NULL DEFAULT now(),
    -- The commit-safe read position the image corresponds to: every event
    -- before (checkpoint_tx, checkpoint_position) is reflected in it.
    checkpoint_tx       bigint  NOT NULL,
    checkpoint_position bigint  NOT NULL,
    -- 1: the image is `payload` (one JSON document); 2: the image is in
    -- snapshot_parts and `payload` is '{}'. A single jsonb value is limited
    -- to 256 MB, about a million rows, hence the parts.
    format_version  int         NOT NULL DEFAULT 1,
    row_counts      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    payload         jsonb       NOT NULL,
    PRIMARY KEY (snapshot_id, taken_at)
) PARTITION BY RANGE (taken_at);

CREATE TABLE IF NOT EXISTS snapshots_default PARTITION OF snapshots DEFAULT;
CREATE INDEX IF NOT EXISTS snapshots_taken_at_idx ON snapshots (taken_at DESC);

-- The image of a format-2 snapshot: each table's rows as JSON arrays of at
-- most 10,000 rows. No foreign key to `snapshots`: partition maintenance
-- moves snapshot rows between partitions (DELETE + INSERT), which a cascading
-- key would follow; pruning deletes the parts explicitly.
CREATE TABLE IF NOT EXISTS snapshot_parts (
    snapshot_id uuid NOT NULL,
    table_name  text NOT NULL,
    part        int  NOT NULL,
    rows        jsonb NOT NULL,
    PRIMARY KEY (snapshot_id, table_name, part)
);

CREATE OR REPLACE FUNCTION create_snapshot_partitions(months_ahead int)
RETURNS int
LANGUAGE sql
AS $$ SELECT robson_create_month_partitions('snapshots', 'taken_at', months_ahead) $$;

SELECT create_snapshot_partitions(3);
