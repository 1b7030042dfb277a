-- The fast append path (issue 16; docs/eventlog.md, docs/performance.md
-- "Append path"). Same rules as 006, fewer and cheaper steps:
--
--   * robson_normalize_payload skips the recursive normalisation when the
--     payload's jsonb text shows no key ending in a volatile suffix (the
--     common case), and strips only the top level when that is enough; the
--     recursive one of 001 stays as robson_normalize_payload_deep, the
--     fallback. The result is the same jsonb, hence the same key.
--   * append_event locks and advances the stream in one statement (an upsert
--     whose condition is the ownership and expected_seq check) instead of
--     three, and looks the key up only when something went wrong: a
--     duplicate shows up as a conflict on event_log_keys and is undone.
--   * append_events(p_events jsonb), and robson_append_batch (arrays, what
--     the Rust batch append calls), append many events set-based: one
--     statement per step for the whole batch.
--
-- Re-runnable (CREATE OR REPLACE). robsond migrate re-applies 001-006
-- before this file; their older but equivalent functions are in place
-- between those files' transactions and this one's.

-- ---------------------------------------------------------------------------
-- Idempotency key: the same jsonb as 001's normalisation, faster.

-- 001's recursive normalisation, under another name: the exact fallback.
CREATE OR REPLACE FUNCTION robson_normalize_payload_deep(p jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE jsonb_typeof(p)
        WHEN 'object' THEN coalesce(
            (SELECT jsonb_object_agg(e.key, robson_normalize_payload_deep(e.value))
               FROM jsonb_each(p) AS e
              WHERE e.key !~ '(_at|timestamp|actor_id|actor_type|request_id)$'),
            '{}'::jsonb)
        WHEN 'array' THEN coalesce(
            (SELECT jsonb_agg(robson_normalize_payload_deep(a.value) ORDER BY a.ord)
               FROM jsonb_array_elements(p) WITH ORDINALITY AS a(value, ord)),
            '[]'::jsonb)
        ELSE p
    END
$$;

-- True unless no object key anywhere in the jsonb text `t` ends in a
-- volatile suffix. In jsonb's text every key is followed by `": ` and a `"`
-- inside a string is always escaped (`\"`), so `_at": ` can only be the end
-- of a key: false is exact, true may be a false alarm (then the caller
-- normalises the slow way).
CREATE OR REPLACE FUNCTION robson_may_have_volatile_key(t text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT strpos(t, '_at": ') > 0 OR strpos(t, 'timestamp": ') > 0
        OR strpos(t, 'actor_id": ') > 0 OR strpos(t, 'actor_type": ') > 0
        OR strpos(t, 'request_id": ') > 0
$$;

-- Drops, at every depth (objects inside arrays included), the keys ending
-- in `_at`, `timestamp`, `actor_id`, `actor_type` or `request_id`; the same
-- result as 001's function (a jsonb value has one form, whatever built it).
CREATE OR REPLACE FUNCTION robson_normalize_payload(p jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    t text := p::text;
BEGIN
    IF NOT robson_may_have_volatile_key(t) THEN
        RETURN p;
    END IF;
    IF jsonb_typeof(p) = 'object' THEN
        p := p - ARRAY(SELECT k FROM jsonb_object_keys(p) AS k
                        WHERE k ~ '(_at|timestamp|actor_id|actor_type|request_id)$');
        t := p::text;
        IF NOT robson_may_have_volatile_key(t) THEN
            RETURN p;
        END IF;
    END IF;
    RETURN robson_normalize_payload_deep(p);
END
$$;

-- The key of 001: idem_ + hex(SHA-256) of the jsonb text of [tenant_id,
-- stream_key, command_id or null, normalized payload], given the payload's
-- jsonb text `p_text` (the append functions print it once for the size
-- check and the key). The array's text is put together as jsonb prints it
-- (`[a, b, c, d]`, strings escaped as jsonb escapes them) rather than
-- built and printed again.
CREATE OR REPLACE FUNCTION robson_idempotency_key_of_text(
    p_tenant_id uuid, p_stream_key text, p_command_id uuid, p_payload jsonb, p_text text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF robson_may_have_volatile_key(p_text) THEN
        p_text := robson_normalize_payload(p_payload)::text;
    END IF;
    RETURN 'idem_' || encode(sha256(convert_to(
        '[' || coalesce(to_json(p_tenant_id::text)::text, 'null')
            || ', ' || coalesce(to_json(p_stream_key)::text, 'null')
            || ', ' || coalesce(to_json(p_command_id::text)::text, 'null')
            || ', ' || coalesce(p_text, 'null') || ']',
        'UTF8')), 'hex');
END
$$;

CREATE OR REPLACE FUNCTION robson_idempotency_key(
    p_tenant_id uuid, p_stream_key text, p_command_id uuid, p_payload jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT robson_idempotency_key_of_text(p_tenant_id, p_stream_key, p_command_id, p_payload,
                                          p_payload::text)
$$;

-- ---------------------------------------------------------------------------
-- The rules of SPEC §2.2 for one event, shared by append_event and the
-- batch appends. Raises 22004/22023 naming the argument (`p_names` ||
-- name: 'p_stream_key' for append_event, 'stream_key' for the JSON keys of
-- append_events), after `context` and, in a batch, `element N` (0-based).
-- `p_payload_bytes` is octet_length(p_payload::text), which the caller has
-- printed anyway for the key. Returns true: called as an expression, it
-- costs no statement.
CREATE OR REPLACE FUNCTION robson_check_append(
    p_context text, p_element int, p_names text,
    p_tenant_id uuid, p_stream_key text, p_event_type text, p_payload jsonb,
    p_payload_bytes int, p_occurred_at timestamptz, p_expected_seq bigint,
    p_idempotency_key text, p_actor_type text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    v_arg    text;
    v_reason text;
    v_code   text := '22023';
BEGIN
    IF p_tenant_id IS NULL THEN
        v_arg := 'tenant_id'; v_reason := 'is required'; v_code := '22004';
    ELSIF p_stream_key IS NULL THEN
        v_arg := 'stream_key'; v_reason := 'is required'; v_code := '22004';
    ELSIF length(p_stream_key) NOT BETWEEN 1 AND 200 THEN
        v_arg := 'stream_key'; v_reason := format('must be 1-200 characters, got %s', length(p_stream_key));
    -- Control characters: Unicode Cc (U+0001-U+001F, U+007F-U+009F; text
    -- cannot hold U+0000), as Rust's char::is_control.
    ELSIF p_stream_key ~ '[\x01-\x1f\x7f-\x9f]' THEN
        v_arg := 'stream_key'; v_reason := 'must not contain control characters';
    ELSIF p_event_type IS NULL THEN
        v_arg := 'event_type'; v_reason := 'is required'; v_code := '22004';
    ELSIF length(p_event_type) NOT BETWEEN 1 AND 100 THEN
        v_arg := 'event_type'; v_reason := format('must be 1-100 characters, got %s', length(p_event_type));
    ELSIF p_event_type ~ '[\x01-\x1f\x7f-\x9f]' THEN
        v_arg := 'event_type'; v_reason := 'must not contain control characters';
    ELSIF p_payload IS NULL THEN
        v_arg := 'payload'; v_reason := 'is required'; v_code := '22004';
    ELSIF jsonb_typeof(p_payload) <> 'object' THEN
        v_arg := 'payload'; v_reason := 'must be a JSON object';
    -- Depth: the payload object is level 1; a container at jsonpath level
    -- 64 is the 65th. The path descends no further than that.
    ELSIF jsonb_path_exists(p_payload, 'strict $.**{64} ? (@.type() == "object" || @.type() == "array")') THEN
        v_arg := 'payload'; v_reason := 'nests deeper than 64 levels';
    ELSIF p_payload_bytes > 1048576 THEN
        v_arg := 'payload'; v_reason := 'is larger than 1048576 bytes';
    ELSIF p_occurred_at IS NULL THEN
        v_arg := 'occurred_at'; v_reason := 'is required'; v_code := '22004';
    ELSIF p_expected_seq < 0 THEN
        v_arg := 'expected_seq'; v_reason := 'must be >= 0';
    -- Absent is NULL: '' would be a real key, shared by every writer that
    -- meant "none", and silently turn their second event into a duplicate.
    ELSIF p_idempotency_key = '' THEN
        v_arg := 'idempotency_key'; v_reason := 'must not be empty (pass NULL for none)';
    ELSIF p_actor_type NOT IN ('CLI', 'Daemon', 'System', 'Exchange') THEN
        v_arg := 'actor_type'; v_reason := 'must be one of CLI, Daemon, System, Exchange';
    ELSE
        RETURN true;
    END IF;
    RAISE EXCEPTION USING ERRCODE = v_code, MESSAGE = format('%s: %s%s%s %s', p_context,
        CASE WHEN p_element IS NULL THEN '' ELSE format('element %s: ', p_element) END,
        p_names, v_arg, v_reason);
END
$$;

-- ---------------------------------------------------------------------------
-- The one append path for a single event (SPEC §2.2). Raises 40001 on an
-- expected_seq mismatch, 42501 when the stream belongs to another tenant,
-- 22023/22004 on invalid arguments; returns the original event with
-- duplicate = true when the idempotency key is already in the log.
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
    v_ok       boolean;
    v_text     text;
BEGIN
    v_text := p_payload::text;
    v_ok := robson_check_append('append_event', NULL, 'p_', p_tenant_id, p_stream_key,
                                p_event_type, p_payload, octet_length(v_text), p_occurred_at,
                                p_expected_seq, p_idempotency_key, p_actor_type);
    v_key := coalesce(p_idempotency_key,
                      robson_idempotency_key_of_text(p_tenant_id, p_stream_key, p_command_id,
                                                     p_payload, v_text));

    -- One statement for the whole append: lock the stream and take the next
    -- seq (the stream is created on first use, owned by this tenant; an
    -- existing one advances only if it is this tenant's and expected_seq
    -- holds; appends to one stream are serialised by this row), insert the
    -- key row with the next global_position (the key is unique across the
    -- log: a repeat, or a racing append with the same key whose commit this
    -- waits for, conflicts and inserts nothing), and the event with it.
    WITH head AS (
        INSERT INTO event_streams AS s (stream_key, tenant_id, last_seq)
        VALUES (p_stream_key, p_tenant_id, 1)
        ON CONFLICT (stream_key) DO UPDATE SET last_seq = s.last_seq + 1
            WHERE s.tenant_id = p_tenant_id
              AND (p_expected_seq IS NULL OR s.last_seq = p_expected_seq)
        RETURNING s.last_seq),
    key_row AS (
        INSERT INTO event_log_keys (idempotency_key, event_id, stream_key, seq, global_position, ingested_at)
        SELECT v_key, v_event_id, p_stream_key, head.last_seq, nextval('event_log_global_position_seq'), v_now
          FROM head
         WHERE p_expected_seq IS NULL OR p_expected_seq = head.last_seq - 1
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING event_log_keys.seq, event_log_keys.global_position),
    event_row AS (
        INSERT INTO event_log (event_id, tenant_id, stream_key, seq, global_position, event_type, payload,
                               occurred_at, ingested_at, idempotency_key, trace_id, causation_id,
                               command_id, workflow_id, actor_type, actor_id)
        SELECT v_event_id, p_tenant_id, p_stream_key, key_row.seq, key_row.global_position, p_event_type, p_payload,
               p_occurred_at, v_now, v_key, p_trace_id, p_causation_id,
               p_command_id, p_workflow_id, p_actor_type, p_actor_id
          FROM key_row)
    SELECT head.last_seq, key_row.global_position INTO v_seq, v_position
      FROM head LEFT JOIN key_row ON true;

    IF NOT FOUND OR (p_expected_seq IS NOT NULL AND p_expected_seq <> v_seq - 1) THEN
        IF FOUND THEN
            -- A new stream with expected_seq > 0: not appended, not created.
            DELETE FROM event_streams s WHERE s.stream_key = p_stream_key;
        END IF;
        -- Nothing appended: in 006's order, a repeat of this tenant's event,
        -- another tenant's stream, a repeat, or a stale expected_seq.
        SELECT k.event_id, k.seq, k.global_position, o.tenant_id
          INTO event_id, seq, global_position, v_owner
          FROM event_log_keys k JOIN event_streams o ON o.stream_key = k.stream_key
         WHERE k.idempotency_key = v_key;
        IF FOUND AND v_owner = p_tenant_id THEN
            duplicate := true;
            RETURN NEXT;
            RETURN;
        END IF;
        IF event_id IS NOT NULL THEN
            duplicate := true;
        END IF;
        SELECT s.tenant_id, s.last_seq INTO v_owner, v_last
          FROM event_streams s WHERE s.stream_key = p_stream_key;
        IF v_owner <> p_tenant_id THEN
            RAISE EXCEPTION 'append_event: stream % belongs to another tenant', p_stream_key
                USING ERRCODE = '42501';
        END IF;
        IF duplicate THEN
            RETURN NEXT;
            RETURN;
        END IF;
        v_last := coalesce(v_last, 0);
        RAISE EXCEPTION 'append_event: concurrent modification of stream %: expected seq %, actual %',
                p_stream_key, p_expected_seq, v_last
            USING ERRCODE = '40001', DETAIL = format('expected=%s actual=%s', p_expected_seq, v_last);
    END IF;

    IF v_position IS NULL THEN
        -- A repeat: the seq just taken is given back (a stream this call
        -- created is removed again) and the original reported.
        IF v_seq = 1 THEN
            DELETE FROM event_streams s WHERE s.stream_key = p_stream_key;
        ELSE
            UPDATE event_streams s SET last_seq = v_seq - 1 WHERE s.stream_key = p_stream_key;
        END IF;
        SELECT k.event_id, k.seq, k.global_position INTO event_id, seq, global_position
          FROM event_log_keys k WHERE k.idempotency_key = v_key;
        duplicate := true;
        RETURN NEXT;
        RETURN;
    END IF;

    -- Delivered at commit, collapsed to one per transaction by PostgreSQL.
    PERFORM pg_notify('robson_events', '');

    event_id := v_event_id;
    seq := v_seq;
    global_position := v_position;
    duplicate := false;
    RETURN NEXT;
END
$$;

-- ---------------------------------------------------------------------------
-- Many events in one call, set-based, with the rules of append_event per
-- event and the result of appending them one after the other, in order
-- (each sees the ones before it: consecutive seqs per stream, an expected_seq
-- that counts the earlier events of the call, a repeat of an earlier event
-- is its duplicate). One row per event, in input order. The first event (in
-- input order) that breaks a rule refuses the whole call, naming `element
-- N` (0-based). The arrays are parallel, one element per event. Called by
-- append_events (JSON) and by the Rust batch append; `p_names` prefixes
-- argument names in messages ('' or 'p_').
CREATE OR REPLACE FUNCTION robson_append_batch(
    p_context text, p_names text,
    a_tenant uuid[], a_stream text[], a_type text[], a_payload jsonb[],
    a_occurred timestamptz[], a_expected bigint[], a_command uuid[], a_key text[],
    a_trace uuid[], a_causation uuid[], a_workflow uuid[], a_actor_type text[],
    a_actor_id text[])
RETURNS TABLE (event_id uuid, seq bigint, global_position bigint, duplicate boolean)
LANGUAGE plpgsql
AS $$
DECLARE
    n          int := coalesce(cardinality(a_tenant), 0);
    v_ok       boolean;
    v_text     text;
    v_now      timestamptz := now();
    v_keys     text[] := '{}';
    v_first    bigint[];   -- per event: the first event of the call with its key
    l_event    uuid[];     -- per event: the original in the log, if any
    l_seq      bigint[];
    l_gp       bigint[];
    l_owner    uuid[];     -- the tenant owning the original's stream
    v_state    text[];     -- d: repeat of a log event of this tenant; D: of an earlier
                           -- event of the call, same tenant; c, C: the same for another
                           -- tenant's (its stream is checked first); n: new
    v_owner    uuid[];     -- per event: its stream's owner, under the lock
    v_seq      bigint[];   -- per new event: its seq
    v_created  text[];
    v_fresh    boolean := false;  -- keys looked up again under the stream locks
    v_tries    int := 0;
    v_failed   int;
    v_new      int;
    v_inserted int;
    v_positions bigint[];
    r_event    uuid[];
    r_seq      bigint[];
    r_gp       bigint[];
    r_dup      boolean[];
    f          bigint;
    j          int;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    IF n <> ANY (ARRAY[cardinality(a_stream), cardinality(a_type), cardinality(a_payload),
                       cardinality(a_occurred), cardinality(a_expected), cardinality(a_command),
                       cardinality(a_key), cardinality(a_trace), cardinality(a_causation),
                       cardinality(a_workflow), cardinality(a_actor_type), cardinality(a_actor_id)]) THEN
        RAISE EXCEPTION '%: the argument arrays must have one element per event', p_context
            USING ERRCODE = '22023';
    END IF;
    FOR i IN 1..n LOOP
        v_text := a_payload[i]::text;
        v_ok := robson_check_append(p_context, i - 1, p_names, a_tenant[i], a_stream[i], a_type[i],
                                    a_payload[i], octet_length(v_text), a_occurred[i],
                                    a_expected[i], a_key[i], a_actor_type[i]);
        v_keys[i] := coalesce(a_key[i], robson_idempotency_key_of_text(a_tenant[i], a_stream[i],
                                                                        a_command[i], a_payload[i],
                                                                        v_text));
    END LOOP;

    LOOP
        -- The originals already in the log (again, when under the locks).
        -- (LATERAL … LIMIT 1, not a join: one index probe per event,
        -- whatever the planner guesses of the arrays' length.)
        SELECT array_agg(l.event_id ORDER BY u.ord), array_agg(l.seq ORDER BY u.ord),
               array_agg(l.global_position ORDER BY u.ord), array_agg(l.tenant_id ORDER BY u.ord),
               array_agg(u.first ORDER BY u.ord)
          INTO l_event, l_seq, l_gp, l_owner, v_first
          FROM (SELECT x.key, x.ord, min(x.ord) OVER (PARTITION BY x.key) AS first
                  FROM unnest(v_keys) WITH ORDINALITY AS x(key, ord)) u
          LEFT JOIN LATERAL (
                SELECT k.event_id, k.seq, k.global_position, o.tenant_id
                  FROM event_log_keys k LEFT JOIN event_streams o ON o.stream_key = k.stream_key
                 WHERE k.idempotency_key = u.key LIMIT 1) l ON true;
        v_state := '{}';
        v_new := 0;
        FOR i IN 1..n LOOP
            f := v_first[i];
            IF l_event[i] IS NOT NULL THEN
                v_state[i] := CASE WHEN l_owner[i] = a_tenant[i] THEN 'd' ELSE 'c' END;
            ELSIF f < i THEN
                v_state[i] := CASE WHEN a_tenant[f] = a_tenant[i] THEN 'D' ELSE 'C' END;
            ELSE
                v_state[i] := 'n';
                v_new := v_new + 1;
            END IF;
        END LOOP;

        IF NOT v_fresh AND v_tries = 0 THEN
            -- Create (owned by the first event's tenant) and lock the streams
            -- the events that are not plain repeats touch, in key order.
            WITH created AS (
                INSERT INTO event_streams AS s (stream_key, tenant_id)
                SELECT DISTINCT ON (u.stream) u.stream, u.tenant
                  FROM unnest(a_stream, a_tenant, v_state) WITH ORDINALITY AS u(stream, tenant, state, ord)
                 WHERE u.state IN ('c', 'C', 'n')
                 ORDER BY u.stream, u.ord
                ON CONFLICT (stream_key) DO NOTHING
                RETURNING s.stream_key)
            SELECT coalesce(array_agg(c.stream_key), '{}') INTO v_created FROM created c;
            PERFORM 1 FROM event_streams s
              WHERE s.stream_key IN (SELECT u.stream FROM unnest(a_stream, v_state) AS u(stream, state)
                                      WHERE u.state IN ('c', 'C', 'n'))
              ORDER BY s.stream_key FOR UPDATE OF s;
        END IF;

        -- Owners and heads under the lock; each new event's seq.
        SELECT array_agg(s.tenant_id ORDER BY u.ord), array_agg(s.last_seq + u.rank ORDER BY u.ord)
          INTO v_owner, v_seq
          FROM (SELECT x.stream, x.ord,
                       count(*) FILTER (WHERE x.state = 'n')
                           OVER (PARTITION BY x.stream ORDER BY x.ord) AS rank
                  FROM unnest(a_stream, v_state) WITH ORDINALITY AS x(stream, state, ord)) u
          LEFT JOIN LATERAL (SELECT s.tenant_id, s.last_seq FROM event_streams s
                              WHERE s.stream_key = u.stream LIMIT 1) s ON true;
        SELECT coalesce(array_agg(nextval('event_log_global_position_seq')), '{}')
          INTO v_positions FROM generate_series(1, v_new);

        -- The events in order, as append_event would see them one by one.
        r_event := '{}'; r_seq := '{}'; r_gp := '{}'; r_dup := '{}';
        v_failed := NULL;
        j := 0;
        FOR i IN 1..n LOOP
            f := v_first[i];
            IF v_state[i] IN ('c', 'C', 'n') AND v_owner[i] <> a_tenant[i] THEN
                v_failed := i;
                EXIT;
            END IF;
            IF v_state[i] IN ('d', 'c') THEN
                r_event[i] := l_event[i]; r_seq[i] := l_seq[i]; r_gp[i] := l_gp[i]; r_dup[i] := true;
            ELSIF v_state[i] IN ('D', 'C') THEN
                r_event[i] := r_event[f]; r_seq[i] := r_seq[f]; r_gp[i] := r_gp[f]; r_dup[i] := true;
            ELSIF a_expected[i] IS NOT NULL AND a_expected[i] <> v_seq[i] - 1 THEN
                v_failed := i;
                EXIT;
            ELSE
                j := j + 1;
                r_event[i] := gen_random_uuid(); r_seq[i] := v_seq[i];
                r_gp[i] := v_positions[j]; r_dup[i] := false;
            END IF;
        END LOOP;

        IF v_failed IS NOT NULL THEN
            IF NOT v_fresh THEN
                -- A repeat may have committed before the locks were taken:
                -- look again before refusing.
                v_fresh := true;
                CONTINUE;
            END IF;
            IF v_owner[v_failed] <> a_tenant[v_failed] THEN
                RAISE EXCEPTION '%: element %: stream % belongs to another tenant',
                        p_context, v_failed - 1, a_stream[v_failed]
                    USING ERRCODE = '42501';
            END IF;
            RAISE EXCEPTION '%: element %: concurrent modification of stream %: expected seq %, actual %',
                    p_context, v_failed - 1, a_stream[v_failed], a_expected[v_failed], v_seq[v_failed] - 1
                USING ERRCODE = '40001',
                      DETAIL = format('expected=%s actual=%s', a_expected[v_failed], v_seq[v_failed] - 1);
        END IF;

        -- Keys are unique across the log: a key committed meanwhile by an
        -- append to a stream not locked here conflicts. Then this attempt's
        -- rows are taken back and the events looked at again.
        WITH ins AS (
            INSERT INTO event_log_keys (idempotency_key, event_id, stream_key, seq, global_position, ingested_at)
            SELECT u.key, u.id, u.stream, u.seq, u.gp, v_now
              FROM unnest(v_keys, r_event, a_stream, r_seq, r_gp, v_state) AS u(key, id, stream, seq, gp, state)
             WHERE u.state = 'n'
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING 1)
        SELECT count(*) INTO v_inserted FROM ins;
        EXIT WHEN v_inserted = v_new;
        DELETE FROM event_log_keys k
         WHERE k.event_id IN (SELECT u.id FROM unnest(r_event, r_dup) AS u(id, dup) WHERE NOT u.dup);
        v_fresh := true;
        v_tries := v_tries + 1;
        IF v_tries > 10 THEN
            RAISE EXCEPTION '%: idempotency keys keep colliding with concurrent appends; retry', p_context
                USING ERRCODE = '40001';
        END IF;
    END LOOP;

    IF v_new > 0 THEN
        UPDATE event_streams s SET last_seq = u.head
          FROM (SELECT x.stream, max(x.seq) AS head
                  FROM unnest(a_stream, r_seq, r_dup) AS x(stream, seq, dup)
                 WHERE NOT x.dup GROUP BY x.stream) u
         WHERE s.stream_key = u.stream;
        INSERT INTO event_log (event_id, tenant_id, stream_key, seq, global_position, event_type, payload,
                               occurred_at, ingested_at, idempotency_key, trace_id, causation_id,
                               command_id, workflow_id, actor_type, actor_id)
        SELECT u.id, u.tenant, u.stream, u.seq, u.gp, u.type, u.payload, u.occurred, v_now, u.key,
               u.trace, u.causation, u.command, u.workflow, u.actor_type, u.actor_id
          FROM unnest(r_event, a_tenant, a_stream, r_seq, r_gp, a_type, a_payload, a_occurred, v_keys,
                      a_trace, a_causation, a_command, a_workflow, a_actor_type, a_actor_id, r_dup)
               AS u(id, tenant, stream, seq, gp, type, payload, occurred, key, trace, causation,
                    command, workflow, actor_type, actor_id, dup)
         WHERE NOT u.dup;
        -- Delivered at commit, collapsed to one per transaction by PostgreSQL.
        PERFORM pg_notify('robson_events', '');
    END IF;
    IF v_new < n AND cardinality(v_created) > 0 THEN
        -- Streams created for events that turned out to be repeats: a repeat
        -- never creates the stream it names.
        DELETE FROM event_streams s WHERE s.stream_key = ANY (v_created) AND s.last_seq = 0;
    END IF;

    RETURN QUERY SELECT * FROM unnest(r_event, r_seq, r_gp, r_dup);
END
$$;

-- ---------------------------------------------------------------------------
-- append_events(p_events jsonb): many events in one call for writers in any
-- language (SPEC §2.2). p_events is a JSON array of objects whose keys are
-- append_event's argument names without `p_` (tenant_id, stream_key,
-- event_type, payload, occurred_at, expected_seq, command_id,
-- idempotency_key, trace_id, causation_id, workflow_id, actor_type,
-- actor_id); the same keys and defaults as append_event: an absent key is
-- the argument's default, a JSON null is NULL. One row per event, in order,
-- as robson_append_batch. Refused whole (nothing written) when an element
-- is not an object, has another key (`p_`-prefixed ones included), a value
-- of the wrong JSON type or text that does not convert (uuid, timestamptz,
-- bigint): 22023 `append_events: element N: ...` naming the key; then the
-- rules of append_event, per element.
CREATE OR REPLACE FUNCTION append_events(p_events jsonb)
RETURNS TABLE (event_id uuid, seq bigint, global_position bigint, duplicate boolean)
LANGUAGE plpgsql
AS $$
DECLARE
    c_keys CONSTANT text[] := ARRAY['tenant_id', 'stream_key', 'event_type', 'payload',
        'occurred_at', 'expected_seq', 'command_id', 'idempotency_key', 'trace_id',
        'causation_id', 'workflow_id', 'actor_type', 'actor_id'];
    c_strings CONSTANT text[] := ARRAY['tenant_id', 'stream_key', 'event_type', 'occurred_at',
        'command_id', 'idempotency_key', 'trace_id', 'causation_id', 'workflow_id',
        'actor_type', 'actor_id'];
    v_element bigint;
    v_problem text;
    a_tenant uuid[]; a_stream text[]; a_type text[]; a_payload jsonb[];
    a_occurred timestamptz[]; a_expected bigint[]; a_command uuid[]; a_key text[];
    a_trace uuid[]; a_causation uuid[]; a_workflow uuid[]; a_actor_type text[]; a_actor_id text[];
BEGIN
    IF p_events IS NULL THEN
        RAISE EXCEPTION 'append_events: p_events is required' USING ERRCODE = '22004';
    END IF;
    IF jsonb_typeof(p_events) <> 'array' THEN
        RAISE EXCEPTION 'append_events: p_events must be a JSON array' USING ERRCODE = '22023';
    END IF;

    -- The shape of every element, set-based: the first problem in order.
    SELECT e.ord - 1, p.problem INTO v_element, v_problem
      FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(v, ord),
           LATERAL (SELECT CASE
               WHEN jsonb_typeof(e.v) <> 'object' THEN 'must be a JSON object'
               WHEN e.v - c_keys <> '{}'::jsonb THEN
                   format('has an unknown key %s (the keys are the argument names of append_event without p_)',
                          (SELECT to_json(k)::text FROM jsonb_object_keys(e.v - c_keys) AS k LIMIT 1))
               WHEN jsonb_typeof(e.v -> 'payload') <> 'object' AND jsonb_typeof(e.v -> 'payload') <> 'null' THEN
                   'payload must be a JSON object'
               WHEN jsonb_typeof(e.v -> 'expected_seq') NOT IN ('number', 'null') THEN
                   'expected_seq must be a JSON number'
               ELSE (SELECT format('%s must be a JSON string', k) FROM unnest(c_strings) AS k
                      WHERE jsonb_typeof(e.v -> k) NOT IN ('string', 'null') LIMIT 1)
           END AS problem) p
     WHERE p.problem IS NOT NULL
     ORDER BY e.ord
     LIMIT 1;
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'append_events: element %: %', v_element, v_problem USING ERRCODE = '22023';
    END IF;

    BEGIN
        SELECT array_agg((e.v ->> 'tenant_id')::uuid ORDER BY e.ord),
               array_agg(e.v ->> 'stream_key' ORDER BY e.ord),
               array_agg(e.v ->> 'event_type' ORDER BY e.ord),
               array_agg(nullif(e.v -> 'payload', 'null'::jsonb) ORDER BY e.ord),
               array_agg(CASE WHEN e.v ? 'occurred_at' THEN (e.v ->> 'occurred_at')::timestamptz
                              ELSE now() END ORDER BY e.ord),
               array_agg((e.v ->> 'expected_seq')::bigint ORDER BY e.ord),
               array_agg((e.v ->> 'command_id')::uuid ORDER BY e.ord),
               array_agg(e.v ->> 'idempotency_key' ORDER BY e.ord),
               array_agg((e.v ->> 'trace_id')::uuid ORDER BY e.ord),
               array_agg((e.v ->> 'causation_id')::uuid ORDER BY e.ord),
               array_agg((e.v ->> 'workflow_id')::uuid ORDER BY e.ord),
               array_agg(e.v ->> 'actor_type' ORDER BY e.ord),
               array_agg(e.v ->> 'actor_id' ORDER BY e.ord)
          INTO a_tenant, a_stream, a_type, a_payload, a_occurred, a_expected, a_command, a_key,
               a_trace, a_causation, a_workflow, a_actor_type, a_actor_id
          FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(v, ord);
    EXCEPTION WHEN data_exception THEN
        -- A value that does not convert: find the first one, to name it.
        FOR v_element, v_problem IN
            SELECT e.ord - 1, k FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(v, ord),
                   unnest(ARRAY['tenant_id', 'occurred_at', 'expected_seq', 'command_id', 'trace_id',
                                'causation_id', 'workflow_id']) AS k
             WHERE e.v ->> k IS NOT NULL
             ORDER BY e.ord
        LOOP
            DECLARE
                v_text text := p_events -> v_element::int ->> v_problem;
            BEGIN
                CASE v_problem
                    WHEN 'occurred_at' THEN PERFORM v_text::timestamptz;
                    WHEN 'expected_seq' THEN PERFORM v_text::bigint;
                    ELSE PERFORM v_text::uuid;
                END CASE;
            EXCEPTION WHEN data_exception THEN
                RAISE EXCEPTION 'append_events: element %: % is not a valid %: %', v_element, v_problem,
                        CASE v_problem WHEN 'occurred_at' THEN 'timestamptz'
                                       WHEN 'expected_seq' THEN 'bigint' ELSE 'uuid' END,
                        SQLERRM
                    USING ERRCODE = '22023';
            END;
        END LOOP;
        RAISE;
    END;

    RETURN QUERY SELECT * FROM robson_append_batch('append_events', '', a_tenant, a_stream, a_type,
        a_payload, a_occurred, a_expected, a_command, a_key, a_trace, a_causation, a_workflow,
        a_actor_type, a_actor_id);
END
$$;
