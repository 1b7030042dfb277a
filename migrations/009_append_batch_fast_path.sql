-- The batch append's fast path (issue 16; docs/eventlog.md "Batches",
-- docs/performance.md "Append path").
--
-- 007's robson_append_batch handles every case (repeats of logged events or
-- of earlier events of the call, another tenant's stream, expected_seq, keys
-- racing with concurrent appends) and pays for it on every call: a key
-- lookup per event, three statements on event_streams, and three PL/pgSQL
-- loops over the events. Nearly every batch a writer sends has none of
-- those cases: new events, on streams of their own tenant, expected_seq (if
-- any) right. This file keeps 007's function, renamed
-- robson_append_batch_general, and puts in front of it a robson_append_batch
-- that does the common case in set-based statements:
--
--   1. every event checked (robson_check_append, in input order, so the
--      first bad event is the one named) and its key taken or computed, in
--      one statement; a key given twice in the call goes to the general path;
--   2. the streams created or advanced by their number of events in the
--      call, in one upsert, in stream_key order (the order 007 locks in, so
--      concurrent batches cannot deadlock), owned by the tenant of the
--      stream's first event; a stream of another tenant is locked but not
--      advanced;
--   3. each event's seq and position; every event must be its stream
--      owner's and meet its expected_seq;
--   4. the key rows inserted ON CONFLICT DO NOTHING: a key already in the
--      log (a repeat) inserts nothing;
--   5. the events inserted, one NOTIFY.
--
-- When step 1, 3 or 4 finds a case it does not handle, what steps 2-4 wrote
-- is taken back by explicit statements (the stream rows stay locked by this
-- transaction, so nobody saw them) and robson_append_batch_general runs on
-- the same arguments: its result, errors included, is the call's. No
-- subtransaction is used (an EXCEPTION block per call would make a writer
-- that sends many batches in one transaction overflow PostgreSQL's
-- subtransaction cache).
--
-- Re-runnable: robsond migrate re-applies 007 first, which puts its
-- function back under the name robson_append_batch (replacing this file's,
-- same signature); this file then drops the old _general, renames 007's
-- function and creates the fast one again, all in its one transaction.
-- Applied twice in a row, it only replaces the fast function.

DO $$
BEGIN
    -- Unless robson_append_batch is already this file's (applied twice in a
    -- row), it is 007's: keep it as the general path.
    IF position('robson_append_batch_general' IN
                (SELECT p.prosrc FROM pg_proc p
                  WHERE p.oid = 'robson_append_batch(text, text, uuid[], text[], text[], jsonb[],
                                    timestamptz[], bigint[], uuid[], text[], uuid[], uuid[],
                                    uuid[], text[], text[])'::regprocedure)) = 0 THEN
        DROP FUNCTION IF EXISTS robson_append_batch_general(
            text, text, uuid[], text[], text[], jsonb[], timestamptz[], bigint[], uuid[], text[],
            uuid[], uuid[], uuid[], text[], text[]);
        ALTER FUNCTION robson_append_batch(
            text, text, uuid[], text[], text[], jsonb[], timestamptz[], bigint[], uuid[], text[],
            uuid[], uuid[], uuid[], text[], text[])
            RENAME TO robson_append_batch_general;
    END IF;
END
$$;

-- Same arguments, result and errors as 007's robson_append_batch (see the
-- comment there); faster when the call holds no repeat, no other tenant's
-- stream and no wrong expected_seq.
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
    v_now      timestamptz := now();
    v_keys     text[];
    v_distinct bigint;
    v_streams  text[];    -- per stream of the call, in stream_key order
    v_counts   bigint[];  -- its events in the call
    v_firsts   bigint[];  -- its first event in the call (1-based)
    h_stream   text[];    -- per stream advanced by step 2
    h_head     bigint[];  -- its new last_seq
    h_created  boolean[]; -- created by step 2
    v_ok       boolean;
    r_event    uuid[];
    r_seq      bigint[];
    r_gp       bigint[];
    v_inserted bigint;
BEGIN
    IF n = 0 OR n <> ANY (ARRAY[cardinality(a_stream), cardinality(a_type),
                                cardinality(a_payload), cardinality(a_occurred),
                                cardinality(a_expected), cardinality(a_command),
                                cardinality(a_key), cardinality(a_trace),
                                cardinality(a_causation), cardinality(a_workflow),
                                cardinality(a_actor_type), cardinality(a_actor_id)]) THEN
        -- Nothing to do, or arrays of different lengths: the general path
        -- says which.
        RETURN QUERY SELECT * FROM robson_append_batch_general(p_context, p_names, a_tenant,
            a_stream, a_type, a_payload, a_occurred, a_expected, a_command, a_key, a_trace,
            a_causation, a_workflow, a_actor_type, a_actor_id);
        RETURN;
    END IF;

    -- 1. The rules per event, in input order (the first bad one raises),
    -- and the keys. The payload is printed once, for the size and the key.
    SELECT array_agg(k.key ORDER BY u.ord), count(DISTINCT k.key COLLATE "C")
      INTO v_keys, v_distinct
      FROM unnest(a_tenant, a_stream, a_type, a_payload, a_occurred, a_expected, a_command,
                  a_key, a_actor_type)
           WITH ORDINALITY AS u(tenant, stream, type, payload, occurred, expected, command,
                                key, actor_type, ord)
     CROSS JOIN LATERAL (SELECT u.payload::text AS t OFFSET 0) p
     CROSS JOIN LATERAL (
           SELECT CASE WHEN robson_check_append(p_context, (u.ord - 1)::int, p_names, u.tenant,
                                                u.stream, u.type, u.payload, octet_length(p.t),
                                                u.occurred, u.expected, u.key, u.actor_type)
                       THEN coalesce(u.key, robson_idempotency_key_of_text(u.tenant, u.stream,
                                                                           u.command, u.payload,
                                                                           p.t))
                  END AS key) k;

    IF v_distinct = n THEN
        -- 2. Create or advance every stream of the call by its events, in
        -- stream_key order; another tenant's stream is locked, not advanced.
        SELECT array_agg(g.stream ORDER BY g.stream), array_agg(g.cnt ORDER BY g.stream),
               array_agg(g.first ORDER BY g.stream)
          INTO v_streams, v_counts, v_firsts
          FROM (SELECT u.stream, count(*) AS cnt, min(u.ord) AS first
                  FROM unnest(a_stream) WITH ORDINALITY AS u(stream, ord) GROUP BY u.stream) g;
        WITH up AS (
            INSERT INTO event_streams AS s (stream_key, tenant_id, last_seq)
            SELECT u.stream, a_tenant[u.first], u.cnt
              FROM unnest(v_streams, v_counts, v_firsts) AS u(stream, cnt, first)
             ORDER BY u.stream
            ON CONFLICT (stream_key) DO UPDATE SET last_seq = s.last_seq + excluded.last_seq
                WHERE s.tenant_id = excluded.tenant_id
            RETURNING s.stream_key, s.last_seq, s.xmax = 0 AS created)
        SELECT array_agg(up.stream_key), array_agg(up.last_seq), array_agg(up.created)
          INTO h_stream, h_head, h_created
          FROM up;

        -- 3. Each event's id and seq (its stream's old head + its rank in
        -- the call); every event must be of its stream's owner (the tenant
        -- of the stream's first event, for a stream step 2 advanced) and
        -- meet its expected_seq.
        SELECT array_agg(gen_random_uuid() ORDER BY e.ord),
               array_agg(h.head - h.cnt + e.rank ORDER BY e.ord),
               -- (no match in h: another tenant's stream; NULL counts as false)
               bool_and(coalesce(h.tenant = e.tenant
                                 AND (e.expected IS NULL OR e.expected = h.head - h.cnt + e.rank - 1),
                                 false))
          INTO r_event, r_seq, v_ok
          FROM (SELECT u.stream, u.tenant, u.expected, u.ord,
                       row_number() OVER (PARTITION BY u.stream ORDER BY u.ord) AS rank
                  FROM unnest(a_stream, a_tenant, a_expected)
                       WITH ORDINALITY AS u(stream, tenant, expected, ord)) e
          LEFT JOIN (SELECT x.stream, x.head, c.cnt, a_tenant[c.first] AS tenant
                       FROM unnest(h_stream, h_head) AS x(stream, head)
                       JOIN unnest(v_streams, v_counts, v_firsts) AS c(stream, cnt, first)
                         ON c.stream = x.stream) h
            ON h.stream = e.stream;

        IF v_ok THEN
            -- Positions in input order.
            SELECT array_agg(nextval('event_log_global_position_seq') ORDER BY i)
              INTO r_gp FROM generate_series(1, n) AS i;
            -- 4. The keys: one already in the log conflicts and inserts nothing.
            INSERT INTO event_log_keys (idempotency_key, event_id, stream_key, seq, global_position,
                                        ingested_at)
            SELECT u.key, u.id, u.stream, u.seq, u.gp, v_now
              FROM unnest(v_keys, r_event, a_stream, r_seq, r_gp) AS u(key, id, stream, seq, gp)
            ON CONFLICT (idempotency_key) DO NOTHING;
            GET DIAGNOSTICS v_inserted = ROW_COUNT;
            IF v_inserted = n THEN
                -- 5. The events.
                INSERT INTO event_log (event_id, tenant_id, stream_key, seq, global_position,
                                       event_type, payload, occurred_at, ingested_at,
                                       idempotency_key, trace_id, causation_id, command_id,
                                       workflow_id, actor_type, actor_id)
                SELECT u.id, u.tenant, u.stream, u.seq, u.gp, u.type, u.payload, u.occurred, v_now,
                       u.key, u.trace, u.causation, u.command, u.workflow, u.actor_type, u.actor_id
                  FROM unnest(r_event, a_tenant, a_stream, r_seq, r_gp, a_type, a_payload,
                              a_occurred, v_keys, a_trace, a_causation, a_command, a_workflow,
                              a_actor_type, a_actor_id)
                       AS u(id, tenant, stream, seq, gp, type, payload, occurred, key, trace,
                            causation, command, workflow, actor_type, actor_id);
                -- Delivered at commit, collapsed to one per transaction.
                PERFORM pg_notify('robson_events', '');
                RETURN QUERY SELECT u.id, u.seq, u.gp, false
                               FROM unnest(r_event, r_seq, r_gp) AS u(id, seq, gp);
                RETURN;
            END IF;
            DELETE FROM event_log_keys k WHERE k.event_id = ANY (r_event);
        END IF;

        -- Take back step 2: created streams removed, the others set back.
        DELETE FROM event_streams s
         USING unnest(h_stream, h_created) AS u(stream, created)
         WHERE u.created AND s.stream_key = u.stream;
        UPDATE event_streams s SET last_seq = s.last_seq - c.cnt
          FROM unnest(h_stream, h_created) AS u(stream, created)
          JOIN unnest(v_streams, v_counts) AS c(stream, cnt) ON c.stream = u.stream
         WHERE NOT u.created AND s.stream_key = u.stream;
    END IF;

    RETURN QUERY SELECT * FROM robson_append_batch_general(p_context, p_names, a_tenant,
        a_stream, a_type, a_payload, a_occurred, a_expected, a_command, a_key, a_trace,
        a_causation, a_workflow, a_actor_type, a_actor_id);
END
$$;
