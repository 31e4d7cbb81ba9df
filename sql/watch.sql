-- watch(), rules, coarse_patterns(), unwatch(), errors at watch() time
CREATE EXTENSION pgcohere;
SET pgcohere.publish_mode = direct;
CREATE TABLE messages (id int PRIMARY KEY, conversation_id int, body text);
CREATE TABLE conversations (id int PRIMARY KEY, title text);

SELECT pgcohere.watch('messages', ARRAY['msg:history:{conversation_id}:*', 'msg:count:{conversation_id}']);
SELECT pgcohere.watch('conversations', ARRAY['conv:metadata:{id}']);
-- several rules per table: a second watch() adds templates; repeating one is a no-op
SELECT pgcohere.watch('messages', ARRAY['msg:{id}', 'msg:count:{conversation_id}']);
SELECT tbl, template, tag FROM pgcohere.rules ORDER BY tbl::text, template;
SELECT tgname, tgrelid::regclass FROM pg_trigger WHERE tgname LIKE 'pgcohere%' ORDER BY tgrelid::regclass::text, tgname;
SELECT * FROM pgcohere.coarse_patterns();

-- errors at watch() time
SELECT pgcohere.watch('messages', ARRAY['msg:{nope}']);
SELECT pgcohere.watch('messages', ARRAY['msg:{id']);
SELECT pgcohere.watch('messages', ARRAY['msg:{}']);
SELECT pgcohere.watch('messages', ARRAY['msg:}']);
SELECT pgcohere.watch('messages', ARRAY[]::text[]);
SELECT pgcohere.watch('messages', ARRAY[NULL]::text[]);
CREATE VIEW messages_v AS SELECT * FROM messages;
SELECT pgcohere.watch('messages_v', ARRAY['v:{id}']);
SELECT pgcohere.watch('no_such_table', ARRAY['x']);
-- a failed watch() left nothing behind
SELECT count(*) FROM pgcohere.rules;

-- the rules table is an extension configuration table (kept by pg_dump)
SELECT extconfig::regclass[] FROM pg_extension WHERE extname = 'pgcohere';

-- ordinary roles may not change rules
CREATE ROLE pgcohere_app;
SET ROLE pgcohere_app;
SELECT pgcohere.watch('messages', ARRAY['x:{id}']);
SELECT pgcohere.unwatch('messages');
RESET ROLE;

-- unwatch one template, then the rest: triggers go with the last one
SELECT pgcohere.unwatch('messages', ARRAY['msg:{id}']);
SELECT tgname FROM pg_trigger WHERE tgrelid = 'messages'::regclass ORDER BY 1;
SELECT pgcohere.unwatch('messages');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'messages'::regclass ORDER BY 1;
SELECT tbl, template FROM pgcohere.rules ORDER BY 1, 2;
BEGIN;
INSERT INTO messages VALUES (1, 1, 'not watched any more');
SELECT * FROM pgcohere.pending();
COMMIT;

DROP VIEW messages_v;
DROP TABLE messages, conversations;
DROP ROLE pgcohere_app;
DROP EXTENSION pgcohere;
