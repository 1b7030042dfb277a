-- Idempotency keys (SPEC §2.2): shared by append_event and mirrored byte for byte
-- by robson_eventlog::idempotency in Rust. Re-runnable.

-- Drops, at every depth (objects inside arrays included), the keys whose value
-- changes on a retry of the same command: keys ending in `_at`, `timestamp`,
-- `actor_id`, `actor_type` or `request_id`.
CREATE OR REPLACE FUNCTION robson_normalize_payload(p jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE jsonb_typeof(p)
        WHEN 'object' THEN coalesce(
            (SELECT jsonb_object_agg(e.key, robson_normalize_payload(e.value))
               FROM jsonb_each(p) AS e
              WHERE e.key !~ '(_at|timestamp|actor_id|actor_type|request_id)$'),
            '{}'::jsonb)
        WHEN 'array' THEN coalesce(
            (SELECT jsonb_agg(robson_normalize_payload(a.value) ORDER BY a.ord)
               FROM jsonb_array_elements(p) WITH ORDINALITY AS a(value, ord)),
            '[]'::jsonb)
        ELSE p
    END
$$;

-- idem_ + hex(SHA-256) of the jsonb text of
-- [tenant_id, stream_key, command_id or null, normalized payload].
-- A JSON array keeps the four parts unambiguous whatever the stream key holds.
CREATE OR REPLACE FUNCTION robson_idempotency_key(
    p_tenant_id uuid, p_stream_key text, p_command_id uuid, p_payload jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT 'idem_' || encode(sha256(convert_to(
        jsonb_build_array(p_tenant_id::text, p_stream_key, p_command_id::text,
                          robson_normalize_payload(p_payload))::text,
        'UTF8')), 'hex')
$$;
