-- Media belongs to someone, object keys say nothing about ids, and every cut-out job ends.
--
-- Ownership. An upload (and the asset it becomes) belongs to the account that started it
-- (owner_id, from V1/V2) or to a guest: guest_id is the id inside the HMAC-signed guest token
-- the API hands a guest who starts an upload. The id alone grants nothing (the token's MAC
-- does), so it is stored in clear. Uploads and assets from before this migration have neither
-- and are reachable by no one through the media routes; they were only ever reachable by id.
ALTER TABLE uploads ADD COLUMN guest_id UUID;
ALTER TABLE assets ADD COLUMN guest_id UUID;

-- Jobs end within a deadline. The API sets deadline_at when it creates a job (now +
-- CUTOUT_JOB_DEADLINE_SECS, at least attempts × visibility timeout + stale-claim time); the
-- default covers rows an older build inserts during a rollout. Past it, a queued or running
-- job is failed by whoever looks first (the reaper in the API and the worker, a poll, a new
-- request for the same upload), and no worker may claim it within CUTOUT_STALE_AFTER_SECS of it.
ALTER TABLE jobs ADD COLUMN deadline_at TIMESTAMPTZ;
UPDATE jobs SET deadline_at = created_at + interval '1380 seconds';
ALTER TABLE jobs
    ALTER COLUMN deadline_at SET DEFAULT now() + interval '1380 seconds',
    ALTER COLUMN deadline_at SET NOT NULL;
CREATE INDEX jobs_overdue_idx ON jobs (deadline_at) WHERE status IN ('queued', 'running');

-- The outbox flag: a job is committed first and its message sent afterwards (no row lock is
-- held across the queue call); enqueued_at is set once the queue took it. A queued job still
-- without it is sent again by the next request for it or by the API's relay.
ALTER TABLE jobs ADD COLUMN enqueued_at TIMESTAMPTZ;
UPDATE jobs SET enqueued_at = created_at;
CREATE INDEX jobs_unsent_idx ON jobs (created_at) WHERE status = 'queued' AND enqueued_at IS NULL;

-- Where the worker stores a job's results: cutouts/<object_prefix>/…, random per job, so a
-- result URL does not reveal the job id and a job id does not reveal the key. Fixed per job,
-- so a retried attempt overwrites its own objects instead of leaving a second set. Rows
-- before this migration get one each (the default is evaluated per row).
ALTER TABLE jobs
    ADD COLUMN object_prefix TEXT NOT NULL DEFAULT replace(gen_random_uuid()::text, '-', '')
        CHECK (object_prefix ~ '^[0-9a-f]{32}$');
