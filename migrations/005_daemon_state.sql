-- State of the projection daemon: read positions, per-stream progress (the
-- exactly-once filter), dead letters, and the command audit table.

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

-- Per stream: the last seq applied (or skipped). An event is applied only when
-- its seq is last_seq + 1, in the transaction that advances last_seq, which
-- makes re-delivery harmless. parked_seq is set while the stream waits behind
-- a dead letter.
CREATE TABLE IF NOT EXISTS projection_stream_progress (
    stream_key      text        PRIMARY KEY,
    tenant_id       uuid        NOT NULL,
    last_seq        bigint      NOT NULL DEFAULT 0,
    last_event_id   uuid,
    last_position   bigint,
    parked_seq      bigint,
    parked_at       timestamptz,
    -- Set by `streams retry|skip` (CLI or HTTP): the daemon re-reads the stream
    -- from the log and clears it.
    resume_requested boolean    NOT NULL DEFAULT false,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS projection_stream_progress_parked_idx
    ON projection_stream_progress (stream_key) WHERE parked_seq IS NOT NULL;
CREATE INDEX IF NOT EXISTS projection_stream_progress_resume_idx
    ON projection_stream_progress (stream_key) WHERE resume_requested;

CREATE TABLE IF NOT EXISTS projection_dead_letters (
    dead_letter_id  bigserial    PRIMARY KEY,
    event_id        uuid         NOT NULL UNIQUE,
    tenant_id       uuid         NOT NULL,
    stream_key      text         NOT NULL,
    seq             bigint       NOT NULL,
    global_position bigint       NOT NULL,
    event_type      varchar(100) NOT NULL,
    error_kind      varchar(40)  NOT NULL CHECK (error_kind IN ('invalid_payload', 'invariant_violation')),
    error           text         NOT NULL,
    failed_at       timestamptz  NOT NULL DEFAULT now(),
    attempts        int          NOT NULL DEFAULT 1,
    -- null while the stream is parked on it; 'skipped' (policy or operator) or 'retried'.
    resolution      varchar(20)  CHECK (resolution IN ('skipped', 'retried')),
    resolved_at     timestamptz
);
CREATE INDEX IF NOT EXISTS projection_dead_letters_stream_idx ON projection_dead_letters (stream_key, seq);

-- Commands issued by operators and tools (audit trail).
CREATE TABLE IF NOT EXISTS commands (
    command_id   uuid        PRIMARY KEY,
    tenant_id    uuid,
    command_type text        NOT NULL,
    payload      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    issued_by    text,
    issued_at    timestamptz NOT NULL DEFAULT now()
);
