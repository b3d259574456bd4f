-- Accounts (issue 5): failed-login limits that hold across every API instance.
--
-- users already has email (lower-case, unique), password_hash (NULL for Supabase-only
-- accounts), supabase_user_id and role (customer | fulfillment | admin) from V1.
--
-- login_attempts records each failed password sign-in by the e-mail it named (whether or not
-- an account has it, so the limit reveals nothing) and by client IP. The API refuses a
-- sign-in when either has 5 failures in the last 15 minutes. Rows older than a day are
-- deleted by the API as it writes (bounded table, no cron needed).
CREATE TABLE login_attempts (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email      TEXT NOT NULL CHECK (length(email) BETWEEN 1 AND 254),
    client_ip  TEXT NOT NULL CHECK (length(client_ip) BETWEEN 1 AND 64),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX login_attempts_email_idx ON login_attempts (email, created_at DESC);
CREATE INDEX login_attempts_ip_idx ON login_attempts (client_ip, created_at DESC);
CREATE INDEX login_attempts_created_idx ON login_attempts (created_at);
CREATE TRIGGER login_attempts_set_updated_at BEFORE UPDATE ON login_attempts
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- A password hash is a PHC string (argon2id); nothing else may be stored there.
ALTER TABLE users
    ADD CONSTRAINT users_password_hash_phc CHECK (password_hash IS NULL OR password_hash LIKE '$argon2id$%');
-- Staff are looked up by role on every staff request.
CREATE INDEX users_staff_idx ON users (id) WHERE role <> 'customer';
