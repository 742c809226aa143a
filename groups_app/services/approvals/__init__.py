"""Approvals: decisions that stand above the change services.

The change services only make changes; when the rule book wants a second person they raise
`SecondPersonNeeded`, and this layer files what was asked as access requests (members) or a
proposal (a privileged grant). Approving runs the change with an explicit
`Approval(approved_by, source)`, through the same pipeline and rule book.

- `access_requests`: file, approve (provision), deny, cancel, retry, close, expire;
- `proposals`: proposed privileged grants, approved or rejected by a second Administrator;
- `changes`: what the doors (pages, People) call to change a group: the change, or its filing.
"""
