-- Hostile input on the append path (SPEC §2.2): append_event refuses, with
-- SQLSTATE 22023 (22004 for a required null) and a message naming the
-- argument, a stream_key or event_type holding a control character, a
-- payload nesting deeper than 64 levels or larger than 1 MiB of text, and
-- an empty p_idempotency_key. Re-runnable (CREATE OR REPLACE): applied after
-- 002, it replaces 002's append_event with the stricter one; the body is
-- otherwise unchanged (see 002 for the steps and docs/eventlog.md).

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
    -- The rules of SPEC §2.2, each refusal naming its argument; Rust
    -- (robson_eventlog::rules) checks the same before it sends anything.
    IF p_tenant_id IS NULL THEN
        RAISE EXCEPTION 'append_event: p_tenant_id is required' USING ERRCODE = '22004';
    END IF;
    IF p_stream_key IS NULL THEN
        RAISE EXCEPTION 'append_event: p_stream_key is required' USING ERRCODE = '22004';
    END IF;
    IF length(p_stream_key) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'append_event: p_stream_key must be 1-200 characters, got %', length(p_stream_key)
            USING ERRCODE = '22023';
    END IF;
    -- Control characters: Unicode Cc (U+0001-U+001F, U+007F-U+009F; text
    -- cannot hold U+0000), as Rust's char::is_control.
    IF p_stream_key ~ '[\x01-\x1f\x7f-\x9f]' THEN
        RAISE EXCEPTION 'append_event: p_stream_key must not contain control characters'
            USING ERRCODE = '22023';
    END IF;
    IF p_event_type IS NULL THEN
        RAISE EXCEPTION 'append_event: p_event_type is required' USING ERRCODE = '22004';
    END IF;
    IF length(p_event_type) NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'append_event: p_event_type must be 1-100 characters, got %', length(p_event_type)
            USING ERRCODE = '22023';
    END IF;
    IF p_event_type ~ '[\x01-\x1f\x7f-\x9f]' THEN
        RAISE EXCEPTION 'append_event: p_event_type must not contain control characters'
            USING ERRCODE = '22023';
    END IF;
    IF p_payload IS NULL THEN
        RAISE EXCEPTION 'append_event: p_payload is required' USING ERRCODE = '22004';
    END IF;
    IF jsonb_typeof(p_payload) <> 'object' THEN
        RAISE EXCEPTION 'append_event: p_payload must be a JSON object' USING ERRCODE = '22023';
    END IF;
    -- Depth: the payload object is level 1, a container inside it level 2.
    -- A container at jsonpath level 64 (the root is level 0) is the 65th.
    -- The path stops descending there, so the cost is bounded by the
    -- payload's first 64 levels (about half a microsecond for a typical event).
    IF jsonb_path_exists(p_payload, 'strict $.**{64} ? (@.type() == "object" || @.type() == "array")') THEN
        RAISE EXCEPTION 'append_event: p_payload nests deeper than 64 levels' USING ERRCODE = '22023';
    END IF;
    -- Size: the bytes of the payload's text as jsonb prints it, which is what
    -- a reader receives (robson_eventlog::MAX_PAYLOAD_BYTES).
    IF octet_length(p_payload::text) > 1048576 THEN
        RAISE EXCEPTION 'append_event: p_payload is larger than 1048576 bytes' USING ERRCODE = '22023';
    END IF;
    IF p_occurred_at IS NULL THEN
        RAISE EXCEPTION 'append_event: p_occurred_at is required' USING ERRCODE = '22004';
    END IF;
    IF p_expected_seq IS NOT NULL AND p_expected_seq < 0 THEN
        RAISE EXCEPTION 'append_event: p_expected_seq must be >= 0' USING ERRCODE = '22023';
    END IF;
    -- Absent is NULL: '' would be a real key, shared by every writer that
    -- meant "none", and silently turn their second event into a duplicate.
    IF p_idempotency_key = '' THEN
        RAISE EXCEPTION 'append_event: p_idempotency_key must not be empty (pass NULL for none)'
            USING ERRCODE = '22023';
    END IF;
    IF p_actor_type IS NOT NULL AND p_actor_type NOT IN ('CLI', 'Daemon', 'System', 'Exchange') THEN
        RAISE EXCEPTION 'append_event: p_actor_type must be one of CLI, Daemon, System, Exchange'
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
