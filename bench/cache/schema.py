"""The chat application's schema, its seed data, its cache policies, and the statements
the load generator sends (the same text for every target, so the cache key and the
PostgreSQL plans are the same). Every write moves a version column: the benchmark checks
the versions it reads against the ones it wrote."""

SCHEMA = """
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE profiles (user_id int PRIMARY KEY REFERENCES users, display_name text NOT NULL,
                       bio text NOT NULL, version bigint NOT NULL DEFAULT 1);
CREATE TABLE conversations (id int PRIMARY KEY, title text NOT NULL, owner_id int NOT NULL REFERENCES users,
                            version bigint NOT NULL DEFAULT 0, last_message_at timestamptz);
CREATE TABLE messages (id bigserial PRIMARY KEY, conversation_id int NOT NULL REFERENCES conversations,
                       author_id int NOT NULL REFERENCES users, body text NOT NULL,
                       version bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX messages_history ON messages (conversation_id, version DESC);
"""

# Conversation id holds sizes[id - 1] messages (conversation_sizes()), numbered by version
# 1..n; the conversation's own version is n.
SEED = [
    "INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, %(users)s) g",
    "INSERT INTO profiles SELECT g, 'User ' || g, 'bio of user ' || g FROM generate_series(1, %(users)s) g",
    """INSERT INTO conversations (id, title, owner_id, version, last_message_at)
       SELECT g, 'conversation ' || g, 1 + g %% %(users)s, size, now()
       FROM unnest(%(sizes)s::int[]) WITH ORDINALITY AS s (size, g)""",
    """INSERT INTO messages (conversation_id, author_id, body, version)
       SELECT c.id, 1 + (c.id * 7 + v) %% %(users)s, 'message ' || v || ' of conversation ' || c.id, v
       FROM conversations c, generate_series(1, c.version) v""",
]


def conversation_sizes(ids_by_rank, top_messages):
    """Messages per conversation, by id: 5-64 each, plus top_messages / rank, where rank is
    the conversation's read popularity (ids_by_rank[0] is the most read): a chat's busiest
    conversations are its longest, and their counts and deep pages cost PostgreSQL most.
    top_messages = 0 gives the flat 5-64 of earlier runs (about 350,000 messages for 10,000
    conversations; 100,000 adds about 980,000 more)."""
    sizes = [0] * len(ids_by_rank)
    for rank, cid in enumerate(ids_by_rank, 1):
        sizes[cid - 1] = 5 + (cid * 37 % 60) + top_messages // rank
    return sizes

# A conversation's messages and counts are tagged by conversation, its metadata and each
# profile by its own key: a write invalidates only what it changed.
TABLE_TTL_S = {"messages": 30, "conversations": 30, "profiles": 60, "users": 60}
CACHED_BY = {"messages": "conversation_id", "conversations": "id", "profiles": "user_id", "users": "id"}
POLICIES = "".join(f"SELECT pgcohere.cache_table('{t}', ttl => '{ttl} s', \"by\" => ARRAY['{CACHED_BY[t]}']);\n"
                   for t, ttl in TABLE_TTL_S.items())

PAGE = 20
HISTORY = ("SELECT id, author_id, body, version, created_at FROM messages WHERE conversation_id = $1 "
           "ORDER BY version DESC LIMIT $2 OFFSET $3")
COUNT = "SELECT count(*), max(version) FROM messages WHERE conversation_id = $1"
METADATA = "SELECT id, title, owner_id, version, last_message_at FROM conversations WHERE id = $1"
PROFILE = "SELECT user_id, display_name, bio, version FROM profiles WHERE user_id = $1"
TTL_S = {HISTORY: TABLE_TTL_S["messages"], COUNT: TABLE_TTL_S["messages"], METADATA: TABLE_TTL_S["conversations"],
         PROFILE: TABLE_TTL_S["profiles"]}  # each statement reads one table
# One autocommit statement: the conversation's version moves and the message carries it
# (the row lock orders concurrent posts to one conversation).
POST = ("WITH c AS (UPDATE conversations SET version = version + 1, last_message_at = now() WHERE id = $1 "
        "RETURNING version) INSERT INTO messages (conversation_id, author_id, body, version) "
        "SELECT $1, $2, $3, version FROM c RETURNING version")
EDIT_PROFILE = "UPDATE profiles SET bio = $2, version = version + 1 WHERE user_id = $1 RETURNING version"
