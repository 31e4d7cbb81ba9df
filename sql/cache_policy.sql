-- Query-cache policies: cache_table(), uncache_table(), cache_policies, cache_catalog(),
-- and the tags (docs/cache.md) a transaction would publish at commit.
CREATE EXTENSION pgcohere;
SET pgcohere.publish_mode = direct;
-- OIDs differ from run to run: show each tag's relation by name
CREATE FUNCTION pending_named() RETURNS SETOF text LANGUAGE sql AS $$
    SELECT CASE WHEN m IS NULL THEN p
                ELSE m[1] || coalesce((SELECT c.oid::regclass::text FROM pg_class c WHERE c.oid = m[2]::oid),
                                      '<dropped>') || m[3] END
    FROM pgcohere.pending() p, LATERAL (SELECT regexp_match(p, '^(c |t tbl:|t all:|t row:)(\d+)(.*)$')) r(m)
    ORDER BY 1
$$;

CREATE TABLE messages (id int PRIMARY KEY, conversation_id int, author text, body text, at timestamptz);
CREATE TABLE users (id int PRIMARY KEY, name text);

-- ---- the API
BEGIN;
SELECT pgcohere.cache_table('messages', ttl => '30 s', "by" => ARRAY['conversation_id', 'author']);
SELECT * FROM pending_named();  -- a policy change: c, tbl and all
COMMIT;
SELECT pgcohere.cache_table('users');
SELECT tbl, ttl, "by" FROM pgcohere.cache_policies ORDER BY tbl::text;
-- upsert: a second call replaces the policy; an empty "by" is no "by"
SELECT pgcohere.cache_table('users', ttl => '1 min', "by" => '{}');
SELECT pgcohere.cache_table('users', ttl => '2 min');
SELECT tbl, ttl, "by" FROM pgcohere.cache_policies ORDER BY tbl::text;
SELECT tgrelid::regclass, tgname FROM pg_trigger WHERE tgname LIKE 'pgcohere%' ORDER BY 1, 2;
-- kept by pg_dump
SELECT extconfig::regclass[] FROM pg_extension WHERE extname = 'pgcohere';

-- ---- refused, with a clear error
CREATE TEMP TABLE scratch (id int);
SELECT pgcohere.cache_table('scratch');
SELECT pgcohere.cache_table('pg_class');
SELECT pgcohere.cache_table('information_schema.sql_features');
SELECT pgcohere.cache_table('pgcohere.rules');
CREATE VIEW recent AS SELECT * FROM messages;
SELECT pgcohere.cache_table('recent');
CREATE MATERIALIZED VIEW counts AS SELECT conversation_id, count(*) FROM messages GROUP BY 1;
SELECT pgcohere.cache_table('counts');
DROP VIEW recent;
DROP MATERIALIZED VIEW counts;
CREATE FOREIGN DATA WRAPPER nowhere;
CREATE SERVER far FOREIGN DATA WRAPPER nowhere;
CREATE FOREIGN TABLE remote (id int) SERVER far;
SELECT pgcohere.cache_table('remote');
CREATE SEQUENCE counter;
SELECT pgcohere.cache_table('counter');
SELECT pgcohere.cache_table('messages', "by" => ARRAY['conversation']);
SELECT pgcohere.cache_table('messages', "by" => ARRAY['ctid']);
SELECT pgcohere.cache_table('messages', "by" => ARRAY['author', 'author']);
SELECT pgcohere.cache_table('messages', "by" => ARRAY['author', NULL]);
SELECT pgcohere.cache_table('messages', ttl => '0 s');
SELECT pgcohere.cache_table('messages', ttl => '-5 s');
SELECT pgcohere.cache_table('messages', ttl => '1 day -25 hours');
SELECT pgcohere.cache_table('missing');
CREATE TABLE base (id int);
CREATE TABLE derived () INHERITS (base);
SELECT pgcohere.cache_table('base');
SELECT pgcohere.cache_table('derived');  -- a child alone is fine: its writes fire its triggers
SELECT pgcohere.uncache_table('derived');
-- nor can a cache-enabled table get inheritance children later
CREATE TABLE users_archive () INHERITS (users);
-- the policies are unchanged by the failures
SELECT tbl, ttl, "by" FROM pgcohere.cache_policies ORDER BY tbl::text;
-- the triggers cannot be disabled
ALTER TABLE users DISABLE TRIGGER pgcohere_row;
-- ordinary roles cannot change policies, but can read them and the catalog
CREATE ROLE cache_reader;
SET ROLE cache_reader;
SELECT pgcohere.cache_table('messages');
SELECT pgcohere.uncache_table('users');
SELECT count(*) FROM pgcohere.cache_policies;
SELECT relname, cached FROM pgcohere.cache_catalog();
RESET ROLE;

-- ---- tags of writes
-- INSERT: tbl and a row tag per non-NULL "by" value; a type the daemon cannot render
-- exactly is never a "by" value here (see by_types below)
BEGIN;
INSERT INTO messages VALUES (1, 42, 'ann', 'hi', '2024-01-01 00:00+00'), (2, 42, NULL, 'x', NULL);
SELECT * FROM pending_named();
ROLLBACK;
INSERT INTO messages VALUES (1, 42, 'ann', 'hi', '2024-01-01 00:00+00'), (2, 42, NULL, 'x', NULL);
-- UPDATE of a "by" column: the OLD and the NEW value
BEGIN;
UPDATE messages SET conversation_id = 7 WHERE id = 1;
SELECT * FROM pending_named();
ROLLBACK;
-- UPDATE of another column: the unchanged values (entries of that conversation read the row)
BEGIN;
UPDATE messages SET body = 'edited' WHERE id = 2;
SELECT * FROM pending_named();
ROLLBACK;
-- DELETE: the OLD values
BEGIN;
DELETE FROM messages WHERE id = 1;
SELECT * FROM pending_named();
ROLLBACK;
-- MERGE and INSERT ... ON CONFLICT fire the same row trigger
BEGIN;
MERGE INTO messages m USING (VALUES (1, 'bob'), (3, 'cy')) AS v(id, author) ON m.id = v.id
    WHEN MATCHED THEN UPDATE SET author = v.author
    WHEN NOT MATCHED THEN INSERT (id, conversation_id, author) VALUES (v.id, 9, v.author);
SELECT * FROM pending_named();
ROLLBACK;
-- a table without "by": its tbl tag only
BEGIN;
INSERT INTO users VALUES (1, 'ann');
SELECT * FROM pending_named();
ROLLBACK;
-- TRUNCATE: tbl and all
BEGIN;
TRUNCATE messages;
SELECT * FROM pending_named();
ROLLBACK;
-- a rolled-back savepoint drops exactly its tags
BEGIN;
INSERT INTO messages VALUES (10, 100, 'a');
SAVEPOINT s;
INSERT INTO messages VALUES (11, 101, 'b');
ROLLBACK TO SAVEPOINT s;
INSERT INTO messages VALUES (12, 102, 'c');
SELECT * FROM pending_named();
ROLLBACK;
-- past pgcohere.max_keys_per_xact row tags coarsen to tbl + all (never dropped)
BEGIN;
SET LOCAL pgcohere.max_keys_per_xact = 4;
INSERT INTO messages SELECT g, g, 'w' || g FROM generate_series(100, 110) g;
SELECT * FROM pending_named();
ROLLBACK;
-- a table with both rules and a policy: one trigger renders both
SELECT pgcohere.watch('messages', ARRAY['msg:{id}']);
BEGIN;
UPDATE messages SET author = 'zed' WHERE id = 1;
SELECT * FROM pending_named();
ROLLBACK;
-- unwatch keeps the triggers while the policy needs them
SELECT pgcohere.unwatch('messages');
SELECT tgrelid::regclass, tgname FROM pg_trigger WHERE tgname LIKE 'pgcohere%' ORDER BY 1, 2;
BEGIN;
DELETE FROM messages WHERE id = 2;
SELECT * FROM pending_named();
ROLLBACK;

-- ---- partitioned tables: a write to a partition publishes its ancestors' tags
CREATE TABLE events (id int, kind text, at date) PARTITION BY RANGE (at);
CREATE TABLE events_2024 (kind text, id int, at date);  -- other column order than the parent
ALTER TABLE events ATTACH PARTITION events_2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
BEGIN;
SELECT pgcohere.cache_table('events', "by" => ARRAY['kind']);
SELECT * FROM pending_named();
COMMIT;
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
SELECT tgrelid::regclass, tgname FROM pg_trigger WHERE tgname LIKE 'pgcohere%' AND tgrelid::regclass::text LIKE 'events%' ORDER BY 1, 2;
BEGIN;
INSERT INTO events VALUES (1, 'login', '2024-05-01'), (2, 'logout', '2025-05-01');
SELECT * FROM pending_named();
ROLLBACK;
-- a partition with a policy of its own publishes both
SELECT pgcohere.cache_table('events_2024', "by" => ARRAY['id']);
BEGIN;
UPDATE events_2024 SET kind = 'signin' WHERE id = 1;
INSERT INTO events_2024 VALUES ('x', 5, '2024-02-02');
SELECT * FROM pending_named();
ROLLBACK;
BEGIN;
TRUNCATE events;
SELECT * FROM pending_named();
ROLLBACK;
-- uncaching the partition keeps the parent's trigger clone and TRUNCATE trigger
SELECT pgcohere.uncache_table('events_2024');
SELECT tgrelid::regclass, tgname FROM pg_trigger WHERE tgname LIKE 'pgcohere%' AND tgrelid::regclass::text LIKE 'events%' ORDER BY 1, 2;
-- uncaching the parent while a partition keeps a policy: the partition gets a row trigger of its own
SELECT pgcohere.cache_table('events_2024');
SELECT pgcohere.uncache_table('events');
SELECT tgrelid::regclass, tgname, tgparentid <> 0 AS clone FROM pg_trigger WHERE tgname LIKE 'pgcohere%' AND tgrelid::regclass::text LIKE 'events%' ORDER BY 1, 2;
BEGIN;
INSERT INTO events VALUES (9, 'z', '2024-09-09');
SELECT * FROM pending_named();
ROLLBACK;
-- and caching the parent again replaces it by the clone
SELECT pgcohere.cache_table('events', "by" => ARRAY['kind']);
SELECT pgcohere.uncache_table('events_2024');
SELECT tgrelid::regclass, tgname, tgparentid <> 0 AS clone FROM pg_trigger WHERE tgname LIKE 'pgcohere%' AND tgrelid::regclass::text LIKE 'events%' ORDER BY 1, 2;
-- a dropped partition takes rows out of the parent's results
BEGIN;
DROP TABLE events_2025;
SELECT * FROM pending_named();
ROLLBACK;
-- so does a detached one (ALTER TABLE of the parent)
BEGIN;
ALTER TABLE events DETACH PARTITION events_2025;
SELECT * FROM pending_named();
ROLLBACK;

-- ---- DDL on a cache-enabled table: c, tbl and all
BEGIN;
ALTER TABLE messages ADD COLUMN edited boolean;
SELECT * FROM pending_named();
ROLLBACK;
BEGIN;
ALTER TABLE messages ALTER COLUMN conversation_id TYPE bigint;
SELECT * FROM pending_named();
SELECT by_columns, by_types FROM pgcohere.cache_catalog() WHERE relname = 'messages';
ROLLBACK;
BEGIN;
ALTER TABLE messages RENAME TO notes;
SELECT * FROM pending_named();
SELECT tbl FROM pgcohere.cache_policies ORDER BY tbl::text;
ROLLBACK;
BEGIN;
CREATE SCHEMA app;
ALTER TABLE users SET SCHEMA app;
SELECT * FROM pending_named();
ROLLBACK;
-- a renamed "by" column: warned, its row tags stop (tbl still goes)
BEGIN;
ALTER TABLE messages RENAME COLUMN author TO writer;
SELECT * FROM pending_named();
UPDATE messages SET writer = 'w' WHERE id = 1;
SELECT * FROM pending_named();
SELECT by_columns FROM pgcohere.cache_catalog() WHERE relname = 'messages';
ROLLBACK;
-- DROP: c, tbl and all of the dropped OID; the policy goes
SELECT oid AS users_oid FROM pg_class WHERE relname = 'users' \gset
BEGIN;
DROP TABLE users;
SELECT replace(p, :'users_oid', 'USERS') FROM pgcohere.pending() p ORDER BY 1;
SELECT tbl FROM pgcohere.cache_policies ORDER BY tbl::text;
ROLLBACK;
-- uncache_table: c, tbl and all; false when there was no policy
BEGIN;
SELECT pgcohere.uncache_table('users');
SELECT * FROM pending_named();
SELECT pgcohere.uncache_table('users');
ROLLBACK;
-- nothing for a rolled-back policy change
BEGIN;
SELECT pgcohere.uncache_table('users');
ROLLBACK;
SELECT * FROM pgcohere.pending();

-- ---- shadowing: a relation created under the name of a cache-enabled table
CREATE SCHEMA other;
BEGIN;
CREATE TABLE other.users (id int);
SELECT * FROM pending_named();
COMMIT;
BEGIN;
CREATE TEMP TABLE users (id int);
SELECT * FROM pending_named();
COMMIT;
BEGIN;
CREATE VIEW other.messages AS SELECT 1 AS id;
SELECT * FROM pending_named();
ROLLBACK;
BEGIN;
CREATE TABLE other.notes (id int);
ALTER TABLE other.notes RENAME TO messages;  -- renamed onto the name
SELECT * FROM pending_named();
ROLLBACK;
-- REVOKE on a table or schema: a role may lose access to what was cached for it
BEGIN;
REVOKE SELECT ON messages FROM cache_reader;
SELECT * FROM pending_named();
ROLLBACK;
BEGIN;
REVOKE USAGE ON SCHEMA other FROM cache_reader;
SELECT count(*) AS entries FROM pgcohere.pending();
ROLLBACK;
BEGIN;
GRANT SELECT ON messages TO cache_reader;  -- more access invalidates nothing cached
SELECT * FROM pgcohere.pending();
ROLLBACK;
-- an unrelated table publishes nothing
BEGIN;
CREATE TABLE unrelated (id int);
SELECT * FROM pgcohere.pending();
ROLLBACK;

-- ---- cache_catalog(): every relation named like a cache-enabled table, in any schema
SELECT nspname LIKE 'pg_temp%' AS temp_schema, relname, cached, ttl_ms, by_columns, by_types, rls, temp
FROM pgcohere.cache_catalog() ORDER BY relname, temp, nspname;
SELECT count(*) = 1 AS one_row_per_relation FROM pgcohere.cache_catalog() WHERE relname = 'users' AND nspname = 'other';
-- row security shows, ttl in milliseconds
ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
SELECT pgcohere.cache_table('messages', ttl => '1.5 ms', "by" => ARRAY['conversation_id', 'author']);
SELECT relname, ttl_ms, rls FROM pgcohere.cache_catalog() WHERE relname = 'messages' AND nspname = 'public';
ALTER TABLE messages DISABLE ROW LEVEL SECURITY;
-- by_types: types the daemon renders exactly as the server does, else other
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE COLLATION nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE typed (a int2, b int4, c int8, d text, e varchar(10), f uuid, g text COLLATE nocase,
                    h text COLLATE "C", i timestamptz, j numeric, k posint, l char(3));
SELECT pgcohere.cache_table('typed', "by" => ARRAY['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l']);
SELECT by_columns, by_types FROM pgcohere.cache_catalog() WHERE relname = 'typed';
-- only those get row tags
BEGIN;
INSERT INTO typed VALUES (1, 2, 3, 'd', 'e', '00000000-0000-0000-0000-00000000000f', 'G', 'h', now(), 1.5, 7, 'l');
SELECT * FROM pending_named();
ROLLBACK;

-- ---- pgcohere.enabled = off collects nothing, policy changes included
BEGIN;
SET LOCAL pgcohere.enabled = off;
SELECT pgcohere.cache_table('typed');
INSERT INTO public.users VALUES (5, 'e');
SELECT * FROM pgcohere.pending();
ROLLBACK;

DROP FOREIGN TABLE remote;
DROP SEQUENCE counter;
DROP TABLE pg_temp.users;
DROP TABLE typed, messages, public.users, other.users, events, derived, base;
DROP SCHEMA other;
DROP SERVER far;
DROP FOREIGN DATA WRAPPER nowhere;
DROP DOMAIN posint;
DROP COLLATION nocase;
DROP ROLE cache_reader;
DROP FUNCTION pending_named();
DROP EXTENSION pgcohere;
