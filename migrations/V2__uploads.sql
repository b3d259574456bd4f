-- Uploads in flight: POST /api/uploads reserves an id and a key and hands out a presigned
-- PUT; POST /api/uploads/{id}/complete checks the stored object against what was declared
-- here and records the `upload` asset. Abandoned rows expire (expires_at) and can be swept.

CREATE TABLE uploads (
    -- Random v4 UUIDs made by the API: unguessable, so possession of the id is the capability.
    id            UUID PRIMARY KEY,
    object_key    TEXT NOT NULL UNIQUE CHECK (length(object_key) BETWEEN 1 AND 512),
    content_type  TEXT NOT NULL CHECK (content_type IN ('image/png', 'image/jpeg', 'image/webp')),
    -- The exact size the presigned PUT was signed for (25 MiB at most).
    byte_size     BIGINT NOT NULL CHECK (byte_size BETWEEN 1 AND 26214400),
    original_name TEXT CHECK (length(original_name) <= 255),
    owner_id      UUID REFERENCES users (id) ON DELETE SET NULL,
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed')),
    asset_id      UUID REFERENCES assets (id) ON DELETE SET NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (status <> 'completed' OR asset_id IS NOT NULL)
);
CREATE INDEX uploads_pending_idx ON uploads (expires_at) WHERE status = 'pending';
CREATE TRIGGER uploads_set_updated_at BEFORE UPDATE ON uploads FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- At most one live (not failed) cut-out job per uploaded asset: a double-clicked "remove
-- background" or a retried POST finds the existing job instead of queueing a second one.
CREATE UNIQUE INDEX jobs_one_live_per_upload_idx ON jobs (upload_asset_id) WHERE status <> 'error';
