-- berth metadata schema, version 2. Times are milliseconds since the epoch. Plain SQL that carries over to PostgreSQL.
CREATE TABLE IF NOT EXISTS repositories (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

-- Every blob whose bytes are stored, once, whatever links it. `key` names
-- the one stored copy (see storage::BlobKey).
CREATE TABLE IF NOT EXISTS blobs (
    digest      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    key         TEXT NOT NULL,
    -- Set by `berth scrub --repair` when the bytes do not hash to the
    -- digest: reads fail closed until a new upload replaces the copy.
    corrupt     INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- A blob is visible in a repository only through a row here.
CREATE TABLE IF NOT EXISTS repo_blobs (
    repo_id     INTEGER NOT NULL,
    digest      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (repo_id, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS repo_blobs_by_digest ON repo_blobs (digest);

-- Manifest bytes, once per digest, exactly as pushed.
CREATE TABLE IF NOT EXISTS manifest_bodies (
    digest      TEXT PRIMARY KEY,
    body        BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS manifests (
    repo_id       INTEGER NOT NULL,
    digest        TEXT NOT NULL,
    media_type    TEXT NOT NULL,
    size          INTEGER NOT NULL,
    artifact_type TEXT,
    subject       TEXT,
    annotations   TEXT,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (repo_id, digest)
) WITHOUT ROWID;
-- Whether any repository still has a manifest (its body goes with the last).
CREATE INDEX IF NOT EXISTS manifests_by_digest ON manifests (digest);
CREATE INDEX IF NOT EXISTS manifests_by_subject ON manifests (repo_id, subject) WHERE subject IS NOT NULL;

-- What each manifest names: config, layers, children (the GC's edges).
CREATE TABLE IF NOT EXISTS manifest_refs (
    repo_id     INTEGER NOT NULL,
    manifest    TEXT NOT NULL,
    target      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    PRIMARY KEY (repo_id, manifest, target, kind)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS manifest_refs_by_target ON manifest_refs (target, repo_id);

CREATE TABLE IF NOT EXISTS tags (
    repo_id     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (repo_id, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_by_digest ON tags (repo_id, digest);

CREATE TABLE IF NOT EXISTS uploads (
    id          TEXT PRIMARY KEY,
    repo        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    -- Who opened it (user name or address), for the per-client cap.
    client      TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uploads_by_client ON uploads (client);

-- The garbage collector's review queue (see core::gc). `kind` is link,
-- blob, manifest or upload; `repo_id` is 0 for global targets.
CREATE TABLE IF NOT EXISTS gc_queue (
    kind         TEXT NOT NULL,
    repo_id      INTEGER NOT NULL,
    target       TEXT NOT NULL,
    review_after INTEGER NOT NULL,
    PRIMARY KEY (kind, repo_id, target)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS gc_queue_due ON gc_queue (review_after);
