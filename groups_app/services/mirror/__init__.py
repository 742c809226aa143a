"""The workspace mirror: a local copy of every group, member, invite, permission and role.

The Public API reads one group at a time and has no search, so the pages that look across
groups (the list, People, drift) read this copy instead; the worker keeps it fresh.

- `sync`: reading Segment into the mirror (a full sync, or one group's refresh), in runs;
- `drift`: what a reading shows was changed outside Group Admin, as "observed" audit entries;
- `selectors`: reading the mirror (freshness, a group, its members, who is a known user);
- `write_through`: a confirmed change written to the mirror before the refresh reads it.
"""
