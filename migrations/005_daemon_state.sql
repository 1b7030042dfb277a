-- State of the projection daemon that a rebuild leaves alone: the read
-- positions and the command audit table. (Per-stream progress and dead
-- letters belong to the projection and live in 003.)

-- Per partition: the commit-safe read position (tx_id, global_position) up to
-- which every event of the partition has been applied, dead-lettered or held.
-- Written in the same transaction as the projection writes it covers.
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    partition       int         NOT NULL CHECK (partition >= 0),
    partition_count int         NOT NULL CHECK (partition_count BETWEEN 1 AND 1024),
    tx_id           bigint      NOT NULL DEFAULT 0,
    global_position bigint      NOT NULL DEFAULT 0,
    events_applied  bigint      NOT NULL DEFAULT 0,
    owner           text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partition)
);

-- Commands issued by operators and tools (audit trail).
CREATE TABLE IF NOT EXISTS commands (
    command_id   uuid        PRIMARY KEY,
    tenant_id    uuid,
    command_type text        NOT NULL,
    payload      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    issued_by    text,
    issued_at    timestamptz NOT NULL DEFAULT now()
);
