-- The `commands` table of 005 (an audit trail of operator commands) was
-- never written by anything: dropped. 005 is applied again on every
-- `migrate` (migrations are re-runnable) and so creates it again first;
-- this file runs after it, so a migrated database never holds it.
DROP TABLE IF EXISTS commands;
