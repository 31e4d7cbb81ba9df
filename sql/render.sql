-- rendering of templates from rows: INSERT, UPDATE (OLD and NEW), DELETE, types,
-- NULL, glob escaping, dedup, tags, manual invalidate()
CREATE EXTENSION pgcohere;
SET pgcohere.publish_mode = direct;
CREATE TABLE items (id int PRIMARY KEY, owner text, price numeric, at date, flags int[]);
SELECT pgcohere.watch('items', ARRAY['item:{id}', 'owner:{owner}:items:*', 'price:{price}:{at}', 'f:{flags}']);

BEGIN;
INSERT INTO items VALUES (1, 'ann', 9.50, '2024-01-02', '{1,2}');
SELECT * FROM pgcohere.pending();
ROLLBACK;

-- UPDATE publishes OLD and NEW; identical keys appear once
INSERT INTO items VALUES (2, 'bob', 1, '2024-01-01', NULL);
BEGIN;
UPDATE items SET owner = 'carl' WHERE id = 2;
SELECT * FROM pgcohere.pending();
ROLLBACK;
BEGIN;
UPDATE items SET price = 2 WHERE id = 2;
UPDATE items SET price = 3 WHERE id = 2;
SELECT * FROM pgcohere.pending();
ROLLBACK;
BEGIN;
DELETE FROM items WHERE id = 2;
SELECT * FROM pgcohere.pending();
ROLLBACK;

-- NULL widens its placeholder to '*': never a lost invalidation
BEGIN;
INSERT INTO items VALUES (3, NULL, NULL, NULL, NULL);
SELECT * FROM pgcohere.pending();
ROLLBACK;

-- glob metacharacters in values are escaped in patterns, verbatim in exact keys;
-- backslash, LF and CR are escaped on the wire so one entry stays one line
BEGIN;
INSERT INTO items VALUES (4, '*', 1, NULL, NULL);
INSERT INTO items VALUES (5, 'a?b[c]\d', 1, NULL, NULL);
INSERT INTO items VALUES (6, E'line1\nline2\r', 1, NULL, NULL);
SELECT * FROM pgcohere.pending();
ROLLBACK;
CREATE TABLE odd (k text PRIMARY KEY);
SELECT pgcohere.watch('odd', ARRAY['odd:{k}']);
BEGIN;
INSERT INTO odd VALUES ('*'), ('a\b');
SELECT * FROM pgcohere.pending();
ROLLBACK;

-- manual invalidation is transactional (keys outside every rule make invalidate() warn:
-- see manual_keys.sql; quiet here)
SET pgcohere.warn_undeclared_keys = off;
BEGIN;
SELECT pgcohere.invalidate('user:profile:42', 'feed:*');
SELECT * FROM pgcohere.pending();
ROLLBACK;
SELECT pgcohere.invalidate(VARIADIC ARRAY['a', 'b']);
SELECT pgcohere.invalidate('');
SELECT pgcohere.invalidate(VARIADIC ARRAY[NULL]::text[]);
RESET pgcohere.warn_undeclared_keys;

SELECT pgcohere.coarse_pattern('x:{a}:y:{b}'), pgcohere.coarse_pattern('plain'), pgcohere.coarse_pattern('p:*:{a}');

-- enabled = off collects nothing (superuser only)
SET pgcohere.enabled = off;
BEGIN;
INSERT INTO items VALUES (7, 'x', 1, NULL, NULL);
SELECT * FROM pgcohere.pending();
ROLLBACK;
RESET pgcohere.enabled;

-- date/time, float and bytea values render under fixed settings (ISO dates, UTC,
-- extra_float_digits 1, hex bytea) whatever the session uses, and the session's own
-- settings are left as they were
CREATE TABLE ev (id int PRIMARY KEY, at timestamptz, d float8, b bytea);
SELECT pgcohere.watch('ev', ARRAY['ev:{at}', 'ev:d:{d}', 'ev:b:{b}']);
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'Asia/Tokyo';
SET extra_float_digits = 3;
SET bytea_output = 'escape';
BEGIN;
INSERT INTO ev VALUES (1, '2024-03-04 05:06:07+09', 0.1, '\x41');
SELECT * FROM pgcohere.pending();
ROLLBACK;
SHOW DateStyle;
SHOW TimeZone;
SHOW extra_float_digits;
SHOW bytea_output;
RESET DateStyle; RESET TimeZone; RESET extra_float_digits; RESET bytea_output;

DROP TABLE items, odd, ev;
DROP EXTENSION pgcohere;
