-- declare_keys(), undeclare_keys(), pgcohere.declared_keys, coarse_patterns() with
-- declared families, and invalidate()'s warning for keys that a resync cannot purge
CREATE EXTENSION pgcohere;
SET pgcohere.publish_mode = direct;
CREATE TABLE messages (id int PRIMARY KEY, conversation_id int, body text);
SELECT pgcohere.watch('messages', ARRAY['msg:count:{conversation_id}', 'msg:history:{conversation_id}:*']);

-- families are written like key templates: globs, {name} widened to '*'
SELECT pgcohere.declare_keys('user:profile:*', 'feed:{region}:*', 'config:global');
SELECT pgcohere.declare_keys('user:profile:*', 'cart:[0-9]*');  -- a repeat is a no-op
SELECT pattern FROM pgcohere.declared_keys ORDER BY 1;
SELECT * FROM pgcohere.coarse_patterns();
-- the daemon's resync query (daemon/src/invalidation/consumer.cpp) skips table tags; a
-- declared family is a key pattern, even one spelled like a tag
SELECT pgcohere.declare_keys('table:public.messages');
SELECT p, EXISTS (SELECT 1 FROM pgcohere.rules r WHERE r.tag = p) AND NOT EXISTS (SELECT 1 FROM
       pgcohere.declared_keys d WHERE pgcohere.coarse_pattern(d.pattern) = p) AS is_tag
  FROM pgcohere.coarse_patterns() AS p;
SELECT pgcohere.undeclare_keys('table:public.messages');
SELECT p, EXISTS (SELECT 1 FROM pgcohere.rules r WHERE r.tag = p) AND NOT EXISTS (SELECT 1 FROM
       pgcohere.declared_keys d WHERE pgcohere.coarse_pattern(d.pattern) = p) AS is_tag
  FROM pgcohere.coarse_patterns() AS p WHERE p LIKE 'table:%';

-- errors: nothing is declared
SELECT pgcohere.declare_keys('');
SELECT pgcohere.declare_keys('ok:*', 'user:{id');
SELECT pgcohere.declare_keys('user:{}');
SELECT pgcohere.declare_keys('user:}');
SELECT pgcohere.declare_keys('*');
SELECT pgcohere.declare_keys('{anything}');
SELECT pgcohere.declare_keys(VARIADIC ARRAY[]::text[]);
SELECT pgcohere.declare_keys(VARIADIC ARRAY['ok:*', NULL]);
SELECT pgcohere.declare_keys(VARIADIC NULL::text[]);
SELECT count(*) FROM pgcohere.declared_keys;

-- kept by pg_dump, like the rules
SELECT extconfig::regclass[] FROM pg_extension WHERE extname = 'pgcohere';

-- keys covered by a rule or a declared family: no warning
BEGIN;
SELECT pgcohere.invalidate('user:profile:42', 'msg:count:7', 'msg:history:7:10:0', 'feed:eu:*', 'config:global',
                           'cart:12');
-- not covered: one warning per key family and transaction
SELECT pgcohere.invalidate('session:ab12');
SELECT pgcohere.invalidate('session:cd34', 'session:ab12');
SELECT pgcohere.invalidate('user:avatar:42:large');
SELECT pgcohere.invalidate('feed:*');      -- a pattern wider than the family feed:*:*
SELECT pgcohere.invalidate('homepage');
SELECT pgcohere.invalidate('*');
SELECT pgcohere.invalidate($$o'brien:1$$);
SELECT count(*) FROM (SELECT pgcohere.invalidate('item:' || g) FROM generate_series(1, 100) g) s;  -- one warning
SELECT * FROM pgcohere.pending() WHERE pending LIKE '_ session:%';
ROLLBACK;
-- a new transaction warns again
SELECT pgcohere.invalidate('session:ab12');
-- at most 10 families per transaction, then one last warning
SELECT count(*) FROM (SELECT pgcohere.invalidate('f' || g || ':1') FROM generate_series(1, 30) g) s;

-- a family declared in this transaction counts at once; rolled back, it is gone again
BEGIN;
SELECT pgcohere.declare_keys('later:*');
SELECT pgcohere.invalidate('later:1');
ROLLBACK;
SELECT pgcohere.invalidate('later:1');

-- the warning can be turned off (by any role)
SET pgcohere.warn_undeclared_keys = off;
SELECT pgcohere.invalidate('quiet:1');
RESET pgcohere.warn_undeclared_keys;

-- undeclare: the family is no longer covered
SELECT pgcohere.undeclare_keys('user:profile:*', 'no:such:*');
SELECT pgcohere.undeclare_keys('no:such:*');
SELECT pgcohere.invalidate('user:profile:42');
SELECT * FROM pgcohere.coarse_patterns();

-- ordinary roles: invalidate (and see the warning), read the families, not change them
CREATE ROLE pgcohere_app;
SET ROLE pgcohere_app;
SELECT pgcohere.invalidate('config:global', 'app:7');
SELECT pattern FROM pgcohere.declared_keys ORDER BY 1;
SELECT pgcohere.declare_keys('app:*');
SELECT pgcohere.undeclare_keys('config:global');
RESET ROLE;

-- unwatch: the rule's pattern no longer covers its keys
SELECT pgcohere.unwatch('messages');
SELECT pgcohere.invalidate('msg:count:7');

DROP TABLE messages;
DROP ROLE pgcohere_app;
DROP EXTENSION pgcohere;
