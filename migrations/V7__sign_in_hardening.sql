-- Sign-in hardening: attempts reserved before any password work, devices that signed in
-- before, and Supabase links that were proven with the account's password.
--
-- login_attempts now holds one row per *admitted* password check (sign-in, Supabase link,
-- registration), inserted before the Argon2 work in the same transaction that counted the
-- earlier rows under advisory locks (so parallel requests cannot all pass the count). A
-- success deletes its own row; a failure, or a request that died mid-way, leaves it to count.
--
-- device: the id of a device token (a signed token the API hands out after a successful
-- sign-in, bound to one e-mail) when the attempt presented a valid one. Attempts from such a
-- device are counted per device only; attempts without one are counted per (e-mail, IP), per
-- IP and per e-mail. See docs/API.md, "Sign-in limits".
ALTER TABLE login_attempts
    ADD COLUMN device TEXT CHECK (device IS NULL OR length(device) BETWEEN 1 AND 64);
CREATE INDEX login_attempts_device_idx ON login_attempts (device, created_at DESC) WHERE device IS NOT NULL;

-- When the account's password proved that a Supabase user may sign in to it. Before this
-- migration, a Supabase sign-in linked any existing account with the token's e-mail, on the
-- strength of a user-editable "email_verified" flag; such links on password accounts are
-- not trusted any more (the API asks for the password to link again). Accounts without a
-- password were created by their Supabase user and need no proof.
ALTER TABLE users ADD COLUMN supabase_linked_at TIMESTAMPTZ;
