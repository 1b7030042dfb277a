-- The append-only event log (SPEC §2). Re-runnable: every object is created
-- with IF NOT EXISTS or CREATE OR REPLACE.
--
-- Layout:
--   event_streams   one row per stream: owner tenant and last seq (the lock
--                   that serialises appends to one stream).
--   event_log_keys  one row per event, NOT partitioned, so that
--                   (stream_key, seq), idempotency_key and event_id are unique
--                   across the whole log and not only inside one month.
--   event_log       the events, range-partitioned by month on ingested_at,
--                   with a DEFAULT partition so that an append never fails
--                   for want of a partition.
--
-- Commit-safe reading: every event carries tx_id, the xid8 of the transaction
-- that appended it. A consumer reads rows with tx_id below the xmin of its
-- snapshot (every such transaction has ended, and no new row can appear
-- there), in (tx_id, global_position) order. See docs/eventlog.md.

CREATE TABLE IF NOT EXISTS event_streams (
    stream_key  text        PRIMARY KEY CHECK (length(stream_key) BETWEEN 1 AND 200),
    tenant_id   uuid        NOT NULL,
    last_seq    bigint      NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE IF NOT EXISTS event_log_global_position_seq AS bigint;

CREATE TABLE IF NOT EXISTS event_log_keys (
    idempotency_key text        PRIMARY KEY,
    event_id        uuid        NOT NULL UNIQUE,
    stream_key      text        NOT NULL,
    seq             bigint      NOT NULL,
    global_position bigint      NOT NULL,
    ingested_at     timestamptz NOT NULL,
    CONSTRAINT event_log_keys_stream_seq_key UNIQUE (stream_key, seq)
);

CREATE TABLE IF NOT EXISTS event_log (
    event_id               uuid         NOT NULL DEFAULT gen_random_uuid(),
    tenant_id              uuid         NOT NULL,
    stream_key             text         NOT NULL,
    seq                    bigint       NOT NULL CHECK (seq >= 1),
    global_position        bigint       NOT NULL DEFAULT nextval('event_log_global_position_seq'),
    tx_id                  xid8         NOT NULL DEFAULT pg_current_xact_id(),
    event_type             varchar(100) NOT NULL,
    payload                jsonb        NOT NULL,
    payload_schema_version int          NOT NULL DEFAULT 1,
    occurred_at            timestamptz  NOT NULL,
    ingested_at            timestamptz  NOT NULL DEFAULT now(),
    idempotency_key        text         NOT NULL,
    trace_id               uuid,
    causation_id           uuid,
    command_id             uuid,
    workflow_id            uuid,
    actor_type             varchar(20)  CHECK (actor_type IN ('CLI', 'Daemon', 'System', 'Exchange')),
    actor_id               text,
    prev_hash              text,
    hash                   text,
    PRIMARY KEY (global_position, ingested_at)
) PARTITION BY RANGE (ingested_at);

ALTER SEQUENCE event_log_global_position_seq OWNED BY event_log.global_position;

CREATE TABLE IF NOT EXISTS event_log_default PARTITION OF event_log DEFAULT;

CREATE INDEX IF NOT EXISTS event_log_commit_order_idx ON event_log (tx_id, global_position);
CREATE INDEX IF NOT EXISTS event_log_stream_idx ON event_log (stream_key, seq);
CREATE INDEX IF NOT EXISTS event_log_tenant_time_idx ON event_log (tenant_id, occurred_at);
CREATE INDEX IF NOT EXISTS event_log_type_time_idx ON event_log (event_type, occurred_at);
CREATE INDEX IF NOT EXISTS event_log_command_idx ON event_log (command_id) WHERE command_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS event_log_trace_idx ON event_log (trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS event_log_causation_idx ON event_log (causation_id) WHERE causation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS event_log_workflow_idx ON event_log (workflow_id) WHERE workflow_id IS NOT NULL;

-- True when the table `part` exists and is attached to `parent`: a month
-- that was detached (its table still there) is not covered.
CREATE OR REPLACE FUNCTION robson_is_partition_of(parent text, part text)
RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT EXISTS (SELECT 1 FROM pg_inherits
                    WHERE inhrelid = to_regclass(part) AND inhparent = to_regclass(parent))
$$;

-- Creates the monthly partitions of `parent` from the current month (UTC) to
-- `months_ahead` months after it. Rows that an append placed in the DEFAULT
-- partition meanwhile are moved into the new partition in the same
-- transaction. Returns the number of partitions created.
CREATE OR REPLACE FUNCTION robson_create_month_partitions(
    parent text, partition_key text, months_ahead int)
RETURNS int
LANGUAGE plpgsql
AS $$
DECLARE
    first_month timestamptz := date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    lo          timestamptz;
    hi          timestamptz;
    part        text;
    created     int := 0;
BEGIN
    IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 120 THEN
        RAISE EXCEPTION 'months_ahead must be between 0 and 120, got %', months_ahead
            USING ERRCODE = '22023';
    END IF;
    FOR i IN 0..months_ahead LOOP
        lo := ((first_month AT TIME ZONE 'UTC') + make_interval(months => i)) AT TIME ZONE 'UTC';
        hi := ((first_month AT TIME ZONE 'UTC') + make_interval(months => i + 1)) AT TIME ZONE 'UTC';
        part := format('%s_y%sm%s', parent,
                       to_char(lo AT TIME ZONE 'UTC', 'YYYY'), to_char(lo AT TIME ZONE 'UTC', 'MM'));
        CONTINUE WHEN robson_is_partition_of(parent, part);
        -- Serialise concurrent maintainers (two daemons, a daemon and psql).
        PERFORM pg_advisory_xact_lock(hashtext('robson_partitions:' || parent));
        CONTINUE WHEN robson_is_partition_of(parent, part);
        IF to_regclass(part) IS NOT NULL THEN
            -- A detached month: left to the operator, and reported by
            -- check_partition_coverage() as missing.
            RAISE WARNING 'robson: table % exists but is not a partition of %; its month stays in %',
                part, parent, parent || '_default';
            CONTINUE;
        END IF;
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, parent);
        -- Wait for in-flight appends to DEFAULT and hold off new ones until
        -- ATTACH (which needs this lock anyway): a row committed after the move
        -- would make ATTACH fail. Taken up front, so no lock upgrade can deadlock.
        EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', parent || '_default');
        EXECUTE format(
            'WITH moved AS (DELETE FROM %I WHERE %I >= $1 AND %I < $2 RETURNING *) '
            'INSERT INTO %I SELECT * FROM moved',
            parent || '_default', partition_key, partition_key, part)
            USING lo, hi;
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       parent, part, lo, hi);
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;

CREATE OR REPLACE FUNCTION create_event_log_partitions(months_ahead int)
RETURNS int
LANGUAGE sql
AS $$ SELECT robson_create_month_partitions('event_log', 'ingested_at', months_ahead) $$;

-- Consecutive whole months after the current one that have a partition.
CREATE OR REPLACE FUNCTION robson_months_covered(parent text)
RETURNS int
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    first_month timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
    n int := 0;
BEGIN
    IF NOT robson_is_partition_of(parent, format('%s_y%s', parent, to_char(first_month, 'YYYY"m"MM'))) THEN
        RETURN 0;
    END IF;
    LOOP
        EXIT WHEN NOT robson_is_partition_of(parent, format('%s_y%s', parent,
                  to_char(first_month + make_interval(months => n + 1), 'YYYY"m"MM')));
        n := n + 1;
        EXIT WHEN n >= 1200;
    END LOOP;
    RETURN n;
END
$$;

-- One row per partitioned table: status OK when the current month and at
-- least 2 future months have partitions, WARNING with fewer future months,
-- CRITICAL when the current month has none (appends then land in DEFAULT).
CREATE OR REPLACE FUNCTION check_partition_coverage()
RETURNS TABLE (table_name text, months_ahead int, status text)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    t text;
    current_ok boolean;
BEGIN
    FOREACH t IN ARRAY ARRAY['event_log', 'snapshots'] LOOP
        CONTINUE WHEN to_regclass(t) IS NULL;
        table_name := t;
        months_ahead := robson_months_covered(t);
        current_ok := robson_is_partition_of(t, format('%s_y%s', t,
                      to_char(date_trunc('month', now() AT TIME ZONE 'UTC'), 'YYYY"m"MM')));
        status := CASE WHEN NOT current_ok THEN 'CRITICAL'
                       WHEN months_ahead >= 2 THEN 'OK'
                       ELSE 'WARNING' END;
        RETURN NEXT;
    END LOOP;
END
$$;

-- The one append path (SPEC §2.2). Raises 40001 on an expected_seq mismatch,
-- 42501 when the stream belongs to another tenant, 22023/22004 on invalid
-- arguments; returns the original event with duplicate = true when the
-- idempotency key is already in the log.
CREATE OR REPLACE FUNCTION append_event(
    p_tenant_id       uuid,
    p_stream_key      text,
    p_event_type      text,
    p_payload         jsonb,
    p_occurred_at     timestamptz DEFAULT now(),
    p_expected_seq    bigint      DEFAULT NULL,
    p_command_id      uuid        DEFAULT NULL,
    p_idempotency_key text        DEFAULT NULL,
    p_trace_id        uuid        DEFAULT NULL,
    p_causation_id    uuid        DEFAULT NULL,
    p_workflow_id     uuid        DEFAULT NULL,
    p_actor_type      text        DEFAULT NULL,
    p_actor_id        text        DEFAULT NULL)
RETURNS TABLE (event_id uuid, seq bigint, global_position bigint, duplicate boolean)
LANGUAGE plpgsql
AS $$
DECLARE
    v_key      text;
    v_owner    uuid;
    v_last     bigint;
    v_seq      bigint;
    v_event_id uuid := gen_random_uuid();
    v_position bigint;
    v_now      timestamptz := now();
BEGIN
    IF p_tenant_id IS NULL THEN
        RAISE EXCEPTION 'append_event: tenant_id is required' USING ERRCODE = '22004';
    END IF;
    IF p_stream_key IS NULL OR length(p_stream_key) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'append_event: stream_key must be 1-200 characters' USING ERRCODE = '22023';
    END IF;
    IF p_event_type IS NULL OR length(p_event_type) NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'append_event: event_type must be 1-100 characters' USING ERRCODE = '22023';
    END IF;
    IF p_payload IS NULL OR jsonb_typeof(p_payload) <> 'object' THEN
        RAISE EXCEPTION 'append_event: payload must be a JSON object' USING ERRCODE = '22023';
    END IF;
    IF p_occurred_at IS NULL THEN
        RAISE EXCEPTION 'append_event: occurred_at must not be null' USING ERRCODE = '22004';
    END IF;
    IF p_expected_seq IS NOT NULL AND p_expected_seq < 0 THEN
        RAISE EXCEPTION 'append_event: expected_seq must be >= 0' USING ERRCODE = '22023';
    END IF;
    IF p_actor_type IS NOT NULL AND p_actor_type NOT IN ('CLI', 'Daemon', 'System', 'Exchange') THEN
        RAISE EXCEPTION 'append_event: actor_type must be one of CLI, Daemon, System, Exchange'
            USING ERRCODE = '22023';
    END IF;

    v_key := coalesce(p_idempotency_key,
                      robson_idempotency_key(p_tenant_id, p_stream_key, p_command_id, p_payload));

    -- An idempotent repeat returns the original, whatever expected_seq says
    -- (a retried command must see its first success) — and before anything
    -- is written, so a repeat never creates the stream it names. (Only the
    -- caller's own events: another tenant's key falls through to the checks.)
    RETURN QUERY SELECT k.event_id, k.seq, k.global_position, true
                   FROM event_log_keys k JOIN event_streams s ON s.stream_key = k.stream_key
                  WHERE k.idempotency_key = v_key AND s.tenant_id = p_tenant_id;
    IF FOUND THEN
        RETURN;
    END IF;

    -- Lock the stream (creating it on first use): appends to one stream are serialised.
    INSERT INTO event_streams AS s (stream_key, tenant_id) VALUES (p_stream_key, p_tenant_id)
        ON CONFLICT (stream_key) DO NOTHING;
    SELECT s.tenant_id, s.last_seq INTO v_owner, v_last
      FROM event_streams s WHERE s.stream_key = p_stream_key FOR UPDATE;
    IF v_owner <> p_tenant_id THEN
        RAISE EXCEPTION 'append_event: stream % belongs to another tenant', p_stream_key
            USING ERRCODE = '42501';
    END IF;

    -- Again under the lock: a concurrent repeat may have committed meanwhile.
    RETURN QUERY SELECT k.event_id, k.seq, k.global_position, true
                   FROM event_log_keys k WHERE k.idempotency_key = v_key;
    IF FOUND THEN
        RETURN;
    END IF;

    IF p_expected_seq IS NOT NULL AND p_expected_seq <> v_last THEN
        RAISE EXCEPTION 'append_event: concurrent modification of stream %: expected seq %, actual %',
                p_stream_key, p_expected_seq, v_last
            USING ERRCODE = '40001', DETAIL = format('expected=%s actual=%s', p_expected_seq, v_last);
    END IF;

    v_seq := v_last + 1;
    v_position := nextval('event_log_global_position_seq');

    -- A given idempotency key may be racing an append to another stream;
    -- the loser waits for the winner's commit and reports it as the original.
    INSERT INTO event_log_keys (idempotency_key, event_id, stream_key, seq, global_position, ingested_at)
        VALUES (v_key, v_event_id, p_stream_key, v_seq, v_position, v_now)
        ON CONFLICT (idempotency_key) DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY SELECT k.event_id, k.seq, k.global_position, true
                       FROM event_log_keys k WHERE k.idempotency_key = v_key;
        RETURN;
    END IF;

    UPDATE event_streams s SET last_seq = v_seq WHERE s.stream_key = p_stream_key;

    INSERT INTO event_log (event_id, tenant_id, stream_key, seq, global_position, event_type, payload,
                           occurred_at, ingested_at, idempotency_key, trace_id, causation_id,
                           command_id, workflow_id, actor_type, actor_id)
    VALUES (v_event_id, p_tenant_id, p_stream_key, v_seq, v_position, p_event_type, p_payload,
            p_occurred_at, v_now, v_key, p_trace_id, p_causation_id,
            p_command_id, p_workflow_id, p_actor_type, p_actor_id);

    -- Delivered at commit, collapsed to one per transaction by PostgreSQL.
    PERFORM pg_notify('robson_events', '');

    RETURN QUERY SELECT v_event_id, v_seq, v_position, false;
END
$$;

SELECT create_event_log_partitions(3);
