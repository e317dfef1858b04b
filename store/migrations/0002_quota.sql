-- The sending quota shared by the relay nodes (package quota, Shared):
-- recipients counted per user and minute. A node's Hold locks the user
-- (pg_advisory_xact_lock), sums the user's last 60 and 1440 minutes and
-- adds to the current one, in one transaction; Release subtracts. Rows
-- older than a day are in no window; every node deletes them now and then
-- (DELETE ... WHERE minute <= current minute - 1440).
CREATE TABLE quota_sends (
	login text NOT NULL,                   -- the user (auth's login name)
	minute bigint NOT NULL,                -- unix minute: seconds since 1970 / 60, floored
	n integer NOT NULL CHECK (n >= 0),     -- recipients counted in it (0 after releases)
	PRIMARY KEY (login, minute)
);

-- The expiry's delete takes the oldest minutes of every user.
CREATE INDEX quota_sends_minute ON quota_sends (minute);
