-- The sending quota shared by the relay nodes (package quota, Shared):
-- recipients counted per user and minute. A node's Hold locks the user
-- (pg_advisory_xact_lock), sums the user's last 60 and 1440 minutes and
-- adds to the current one, in one transaction; Release subtracts. Rows
-- older than a day are in no window and are deleted now and then by every
-- node (delete ... where minute <= now - 1440).
create table if not exists quota_sends (
	login  text    not null,          -- the user (auth's login), as the relay names it
	minute bigint  not null,          -- unix minute: seconds since 1970 / 60, floored
	n      integer not null check (n >= 0), -- recipients counted in it (0 after releases)
	primary key (login, minute)
);

-- The expiry's delete walks the oldest minutes of every user.
create index if not exists quota_sends_minute on quota_sends (minute);
