"""assignment_counts: live compliance counts per certification, status, required, exempt, ...

The compliance summary and the group tree read these few rows instead of aggregating every
assignment of the organization (which grew linearly: 393 ms at 1M assignments). Triggers keep
them in the transaction that changes an assignment (insert, update, delete: fan-out, recompute,
renewal, revocation, exemption, bulk import, and any later code path) or a subject's `active`
flag (a leaver's assignments leave the figures without being touched).

What is counted is each (certification, subject)'s *current* assignment: the live one, or the
latest revoked one when none is live (`reporting.subjects.current_assignment`), keyed by its
status, `required`, whether it is exempt, whether its subject is active, and whether it is
revoked (a live row inserted beside revoked history looks its pair up only where revoked rows
are counted, whatever their stored status).

* PostgreSQL: statement-level AFTER triggers with transition tables aggregate the statement's
  delta and apply it with one `INSERT … ON CONFLICT DO UPDATE` in key order (two transactions
  lock the counts rows they share in the same order). The statement is planned on each call
  (`EXECUTE`): a plan PL/pgSQL cached for the first, one-row statement nested loops over the
  transition table of a 2-million-row insert for minutes. A live row changed into a live row is
  the current one before and after: its delta is -old +new, with no lookup. Rows that are or
  were revoked, live rows inserted where the certification has revoked rows counted, and
  deleted rows, look up their (certification, subject)'s rows to find the current one before
  and after the statement.
* SQLite: row-level triggers doing the same for one row (one writer at a time: nothing to
  serialize).

Concurrency (PostgreSQL, READ COMMITTED). A trigger's delta is exact only if what it reads
(other rows of a pair, a subject's `active`) is the state the other transactions' deltas left,
neither older nor newer. Two cases used to break that: a subject deactivated while another
transaction counted a new assignment of it as active (its uncommitted row unseen by the
deactivation's move: a count of -1 in an inactive bucket), and two transactions changing rows
of one pair (a revoked row written beside a new live one) each computing "the current row"
without the other's row. So the counting, not the writes, is serialized by transaction-level
advisory locks, taken by each trigger before it reads anything, always in the same order:

1. the organization's *activity* lock: shared by every assignments trigger, exclusive by a
   subject trigger whose statement changed some `active`;
2. each certification's *pair* lock: exclusive by a statement with a revoked row or a deletion
   (it may change which row of a pair is current), shared otherwise (live rows only: inserts
   into pairs without a live row, the unique live index keeping any two apart, and live rows
   staying live, whose -old +new needs no other row).

A trigger holding its locks reads with a new snapshot that contains every transaction that
held a conflicting lock before it (they keep it until they commit), and none that will hold it
after; so the deltas apply in one order, each to the state the previous ones left. A
transaction holding a shared lock while waiting on a row lock of one waiting for the exclusive
lock is a deadlock PostgreSQL detects (one transaction retried), the same as two transactions
sharing counts rows. An update never moves a row to another pair (`assignments_pair_fixed`).

The table is filled from the assignments here; `certs counts verify` / `certs counts rebuild`
check and rewrite it (`certifications.reporting.counts`).

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30 06:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenancy import rls

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

SUBJECT_TABLES = {"employees": "employee", "assets": "asset", "clients": "client",
                  "locations": "location"}  # fmt: skip
KEY = "org_id, certification_id, status, required, exempt, active, revoked"
PAIR = "org_id, subject_type, subject_id, certification_id"
# `b` is newer than `a` in their (certification, subject): live, or revoked later.
NEWER = """
  b.org_id = a.org_id AND b.subject_type = a.subject_type AND b.subject_id = a.subject_id
  AND b.certification_id = a.certification_id AND b.id <> a.id
  AND (b.revoked_at IS NULL OR b.revoked_at > a.revoked_at
       OR (b.revoked_at = a.revoked_at AND b.id > a.id))
"""

# ---- PostgreSQL ------------------------------------------------------------------------------

PG_INACTIVE = " UNION ALL ".join(
    f"SELECT org_id, id FROM {t} WHERE active IS false" for t in SUBJECT_TABLES
)
PG_COLS = (
    "{x}.org_id, {x}.subject_type, {x}.subject_id, {x}.certification_id, {x}.id, {x}.status,"
    " {x}.required, {x}.exempt_at IS NOT NULL AS exempt, {x}.revoked_at"
)
PG_CURRENT = (
    "SELECT DISTINCT ON (" + PAIR + ") * FROM {rows} "
    "ORDER BY " + PAIR + ", revoked_at IS NULL DESC, revoked_at DESC, id DESC"
)
UPSERT = f"INSERT INTO assignment_counts AS c ({KEY}, n)"
# Transition tables from this many rows are joined by hashing only (see _pg_function).
BIG = 5000
# First keys of the two-key transaction-level advisory locks of the counting (the application's
# are 4_0001..4_0003): an organization's subject activity, a certification's pairs.
ACTIVITY_LOCK = 4_0021
PAIR_LOCK = 4_0022
ON_CONFLICT = f"ON CONFLICT ({KEY}) DO UPDATE SET n = c.n + excluded.n"


def _tables(op_name: str) -> list[tuple[str, int]]:
    """The statement's transition tables and the sign of their rows' contribution."""
    return [("new_rows", 1)] * (op_name != "delete") + [("old_rows", -1)] * (op_name != "insert")


def _pg_needs_pairs(op_name: str) -> str:
    """True when a row's change may move its (certification, subject)'s count to another row:
    a revoked row in the statement, a live row inserted beside counted revoked history, or a
    deleted live row with siblings. Otherwise every row of the statement is the current row of
    its pair before and after (one live row per pair), and the delta is -old +new."""
    checks = [
        f"EXISTS (SELECT 1 FROM {t} WHERE revoked_at IS NOT NULL)" for t, _ in _tables(op_name)
    ]
    sibling = (
        "EXISTS (SELECT 1 FROM assignments b WHERE b.org_id = x.org_id"
        " AND b.subject_type = x.subject_type AND b.subject_id = x.subject_id"
        " AND b.certification_id = x.certification_id{extra})"
    )
    if op_name == "insert":
        # The latest revoked row of a pair without a live one is counted (status revoked), so
        # only certifications with revoked rows counted need the index probe.
        checks.append(
            "EXISTS (SELECT 1 FROM new_rows x WHERE (x.org_id, x.certification_id) IN"
            " (SELECT org_id, certification_id FROM assignment_counts"
            "  WHERE revoked AND n > 0)"
            " AND " + sibling.format(extra=" AND b.revoked_at IS NOT NULL") + ")"
        )
    if op_name == "delete":
        checks.append("EXISTS (SELECT 1 FROM old_rows x WHERE " + sibling.format(extra="") + ")")
    return " OR ".join(checks)


def _pg_simple(op_name: str) -> str:
    """Every row is its pair's current row before and after: -old +new, aggregated."""
    rows = " UNION ALL ".join(
        f"SELECT org_id, certification_id, subject_id, status, required,"
        f" exempt_at IS NOT NULL AS exempt, revoked_at IS NOT NULL AS revoked, {d} AS d"
        f" FROM {t}"
        for t, d in _tables(op_name)
    )
    # The transition tables' row counts are known to the planner (no filter here): it hashes
    # the few inactive subjects.
    return f"""
  {UPSERT}
  WITH inactive AS ({PG_INACTIVE})
  SELECT d.org_id, d.certification_id, d.status, d.required, d.exempt, i.id IS NULL,
         d.revoked, sum(d.d)
  FROM ({rows}) d LEFT JOIN inactive i ON i.org_id = d.org_id AND i.id = d.subject_id
  GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING sum(d.d) <> 0
  ORDER BY 1, 2, 3, 4, 5, 6, 7
  {ON_CONFLICT}"""


def _pg_pairs(op_name: str) -> str:
    """The statement's (certification, subject) pairs: -their current row before, +after.

    Sorts and hashes only (no anti-join whose estimate could turn into a nested loop over a
    transition table): the rows before are, per id, the old version, else the row now unless
    the statement inserted it (tags 0 old, 1 new, 2 now; DISTINCT ON picks the lowest)."""
    pairs = " UNION ".join(f"SELECT {PAIR} FROM {t}" for t, _ in _tables(op_name))
    changed = "".join(
        f" UNION ALL SELECT {PG_COLS.format(x='x')}, {0 if d < 0 else 1} AS tag FROM {t} x"
        for t, d in _tables(op_name)
    )
    return f"""
  {UPSERT}
  WITH inactive AS ({PG_INACTIVE}),
  pairs AS ({pairs}),
  now_rows AS (
    SELECT {PG_COLS.format(x="b")}, 2 AS tag FROM assignments b JOIN pairs p USING ({PAIR})
  ),
  before_rows AS (
    SELECT * FROM (
      SELECT DISTINCT ON (id) * FROM (SELECT * FROM now_rows{changed}) u ORDER BY id, tag
    ) v WHERE tag <> 1
  ),
  delta AS (
    SELECT org_id, certification_id, subject_id, status, required, exempt,
           revoked_at IS NOT NULL AS revoked, 1 AS d
    FROM ({PG_CURRENT.format(rows="now_rows")}) a
    UNION ALL
    SELECT org_id, certification_id, subject_id, status, required, exempt,
           revoked_at IS NOT NULL, -1
    FROM ({PG_CURRENT.format(rows="before_rows")}) b
  )
  SELECT d.org_id, d.certification_id, d.status, d.required, d.exempt,
         (d.org_id, d.subject_id) NOT IN (SELECT org_id, id FROM inactive), d.revoked,
         sum(d.d)
  FROM delta d
  GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING sum(d.d) <> 0
  ORDER BY 1, 2, 3, 4, 5, 6, 7
  {ON_CONFLICT}"""


def _pg_exclusive(op_name: str) -> str:
    """The statement may change which row of a (certification, subject) is the current one: a
    revoked row in it, or a deletion. Then it takes its certifications' pair locks exclusively;
    a statement of live rows only (fan-out, recompute, exemption) shares them."""
    if op_name == "delete":
        return "true"
    return " OR ".join(
        f"EXISTS (SELECT 1 FROM {t} WHERE revoked_at IS NOT NULL)" for t, _ in _tables(op_name)
    )


def _pg_locks(op_name: str) -> str:
    """Serialize the counting, never the writes (see the module docstring, "Concurrency").

    Transaction-level advisory locks, taken after the statement's rows are written and before
    anything is read (each later statement of the function takes a new snapshot, so it sees
    every transaction that held a conflicting lock before): the organization's activity lock
    (shared; a subject's `active` change takes it exclusively), then each certification's pair
    lock (exclusive when `_pg_exclusive`, else shared). Keys in ascending order, the same order
    in every transaction; a hash collision only serializes more."""
    # An update never moves a row to another pair (`assignments_pair_fixed`): its new rows
    # name every organization and certification of the statement.
    t = "old_rows" if op_name == "delete" else "new_rows"
    orgs = f"SELECT hashtext(u.org_id::text) AS k FROM (SELECT DISTINCT org_id FROM {t}) u"
    certs = (
        "SELECT hashtext(u.org_id::text || u.certification_id::text) AS k"
        f" FROM (SELECT DISTINCT org_id, certification_id FROM {t}) u"
    )
    return f"""
  EXECUTE $q$ SELECT pg_advisory_xact_lock_shared({ACTIVITY_LOCK}, s.k)
              FROM ({orgs} ORDER BY k) s $q$;
  EXECUTE $q$ SELECT {_pg_exclusive(op_name)} $q$ INTO exclusive;
  IF exclusive THEN
    EXECUTE $q$ SELECT pg_advisory_xact_lock({PAIR_LOCK}, s.k) FROM ({certs} ORDER BY k) s $q$;
  ELSE
    EXECUTE $q$ SELECT pg_advisory_xact_lock_shared({PAIR_LOCK}, s.k)
                FROM ({certs} ORDER BY k) s $q$;
  END IF;"""


def _pg_function(op_name: str) -> str:
    table = "old_rows" if op_name == "delete" else "new_rows"
    return f"""
CREATE FUNCTION assignment_counts_{op_name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  exclusive boolean;
  needs_pairs boolean;
  big boolean;
  nestloop text := current_setting('enable_nestloop');
BEGIN
  {_pg_locks(op_name)}
  EXECUTE $q$ SELECT {_pg_needs_pairs(op_name)} $q$ INTO needs_pairs;
  -- A large statement: hash joins, never a nested loop over it (rows just written have no
  -- statistics yet: a plan made for "one row" probed every row by org_id alone).
  EXECUTE $q$ SELECT count(*) >= {BIG} FROM (SELECT 1 FROM {table} LIMIT {BIG}) x $q$ INTO big;
  IF big THEN
    PERFORM set_config('enable_nestloop', 'off', true);
  END IF;
  IF needs_pairs THEN
    EXECUTE $q${_pg_pairs(op_name)}
    $q$;
  ELSE
    EXECUTE $q${_pg_simple(op_name)}
    $q$;
  END IF;
  IF big THEN
    PERFORM set_config('enable_nestloop', nestloop, true);
  END IF;
  RETURN NULL;
END
$fn$
"""


def _pg_subject_function(table: str, kind: str) -> str:
    changed = (
        "FROM new_rows x JOIN old_rows o ON o.org_id = x.org_id AND o.id = x.id"
        " WHERE o.active IS DISTINCT FROM x.active"
    )
    return f"""
CREATE FUNCTION {table}_counts_active() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  changed_orgs bigint;
BEGIN
  -- The organization's activity lock, exclusively, before the assignments are read: every
  -- transaction that counted assignments of this organization has committed (this statement's
  -- snapshot sees its rows), and every other one counts after this one commits (it reads the
  -- subject's new `active`). Nothing to move when no `active` changed (no lock either).
  -- (Every statement is planned on its call, `EXECUTE`: a plan cached for one row would
  -- nested-loop a bulk update's transition tables.)
  EXECUTE $q$ SELECT pg_advisory_xact_lock({ACTIVITY_LOCK}, s.k)
  FROM (SELECT DISTINCT hashtext(x.org_id::text) AS k {changed} ORDER BY k) s $q$;
  GET DIAGNOSTICS changed_orgs = ROW_COUNT;
  IF changed_orgs = 0 THEN
    RETURN NULL;
  END IF;
  EXECUTE $q$
  INSERT INTO assignment_counts AS c ({KEY}, n)
  SELECT a.org_id, a.certification_id, a.status, a.required, a.exempt_at IS NOT NULL,
         v.active, a.revoked_at IS NOT NULL, sum(v.d)
  FROM (SELECT x.org_id, x.id, o.active AS was, x.active AS now {changed}) f
  JOIN assignments a
    ON a.org_id = f.org_id AND a.subject_type = '{kind}' AND a.subject_id = f.id
  CROSS JOIN LATERAL (VALUES (f.was, -1), (f.now, 1)) AS v(active, d)
  WHERE a.revoked_at IS NULL OR NOT EXISTS (SELECT 1 FROM assignments b WHERE {NEWER})
  GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING sum(v.d) <> 0
  ORDER BY 1, 2, 3, 4, 5, 6, 7
  ON CONFLICT ({KEY}) DO UPDATE SET n = c.n + excluded.n
  $q$;
  RETURN NULL;
END
$fn$
"""


PAIR_FIXED = """
CREATE FUNCTION assignments_pair_fixed() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'an assignment keeps its organization, certification and subject'
    USING ERRCODE = 'check_violation';
END
$fn$
"""


def _pg_upgrade() -> None:
    # The counting reads an update's pairs from its new rows (locks) and treats a live row
    # updated into a live row as the current one before and after: no row changes pair.
    op.execute(PAIR_FIXED)
    op.execute(
        "CREATE TRIGGER assignments_pair_fixed BEFORE UPDATE OF"
        " org_id, certification_id, subject_type, subject_id ON assignments FOR EACH ROW"
        " WHEN (OLD.org_id IS DISTINCT FROM NEW.org_id"
        " OR OLD.certification_id IS DISTINCT FROM NEW.certification_id"
        " OR OLD.subject_type IS DISTINCT FROM NEW.subject_type"
        " OR OLD.subject_id IS DISTINCT FROM NEW.subject_id)"
        " EXECUTE FUNCTION assignments_pair_fixed()"
    )
    for name, event, tables in (
        ("insert", "INSERT", "NEW TABLE AS new_rows"),
        ("update", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("delete", "DELETE", "OLD TABLE AS old_rows"),
    ):
        op.execute(_pg_function(name))
        op.execute(
            f"CREATE TRIGGER assignment_counts_{name} AFTER {event} ON assignments"
            f" REFERENCING {tables} FOR EACH STATEMENT"
            f" EXECUTE FUNCTION assignment_counts_{name}()"
        )
    for table, kind in SUBJECT_TABLES.items():
        op.execute(_pg_subject_function(table, kind))
        op.execute(
            f"CREATE TRIGGER {table}_counts_active AFTER UPDATE ON {table}"
            " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT"
            f" EXECUTE FUNCTION {table}_counts_active()"
        )


def _pg_downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS assignments_pair_fixed ON assignments")
    op.execute("DROP FUNCTION IF EXISTS assignments_pair_fixed()")
    for name in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS assignment_counts_{name} ON assignments")
        op.execute(f"DROP FUNCTION IF EXISTS assignment_counts_{name}()")
    for table in SUBJECT_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_counts_active ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {table}_counts_active()")


# ---- SQLite (row-level) ----------------------------------------------------------------------

LITE_INACTIVE = " UNION ALL ".join(
    f"SELECT id FROM {t} WHERE org_id = d.org_id AND active = 0" for t in SUBJECT_TABLES
)
LITE_COLS = "{x}.org_id, {x}.certification_id, {x}.subject_id, {x}.status, {x}.required, " \
            "{x}.exempt_at IS NOT NULL AS exempt, {x}.revoked_at, {x}.id"  # fmt: skip


def _lite_body(pair: str, before: str | None, after: str | None) -> str:
    """The row's (certification, subject): -its current row before, +its current row after."""
    siblings = (
        f"SELECT {LITE_COLS.format(x='s')} FROM assignments s WHERE s.org_id = {pair}.org_id"
        f" AND s.subject_type = {pair}.subject_type AND s.subject_id = {pair}.subject_id"
        f" AND s.certification_id = {pair}.certification_id AND s.id <> {pair}.id"
    )

    def current(row: str | None, d: int) -> str:
        rows = siblings
        if row is not None:
            rows += f" UNION ALL SELECT {LITE_COLS.format(x=row)}"
        return (
            "SELECT * FROM (SELECT org_id, certification_id, subject_id, status, required,"
            f" exempt, revoked_at IS NOT NULL AS revoked, {d} AS d FROM ({rows}) AS r"
            " ORDER BY revoked_at IS NULL DESC, revoked_at DESC, id DESC LIMIT 1)"
        )

    return f"""
  INSERT INTO assignment_counts ({KEY}, n)
  SELECT d.org_id, d.certification_id, d.status, d.required, d.exempt,
         d.subject_id NOT IN ({LITE_INACTIVE}), d.revoked, sum(d.d)
  FROM ({current(after, 1)} UNION ALL {current(before, -1)}) AS d
  WHERE true
  GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING sum(d.d) <> 0
  ON CONFLICT ({KEY}) DO UPDATE SET n = n + excluded.n;
"""


def _lite_upgrade() -> None:
    op.execute(
        "CREATE TRIGGER assignment_counts_insert AFTER INSERT ON assignments BEGIN"
        + _lite_body("NEW", None, "NEW")
        + "END"
    )
    op.execute(
        "CREATE TRIGGER assignment_counts_update AFTER UPDATE OF"
        " status, required, exempt_at, revoked_at, subject_id, certification_id"
        " ON assignments BEGIN" + _lite_body("NEW", "OLD", "NEW") + "END"
    )
    op.execute(
        "CREATE TRIGGER assignment_counts_delete AFTER DELETE ON assignments BEGIN"
        + _lite_body("OLD", "OLD", None)
        + "END"
    )
    for table, kind in SUBJECT_TABLES.items():
        op.execute(f"""
CREATE TRIGGER {table}_counts_active AFTER UPDATE OF active ON {table}
WHEN OLD.active IS NOT NEW.active BEGIN
  INSERT INTO assignment_counts ({KEY}, n)
  SELECT a.org_id, a.certification_id, a.status, a.required, a.exempt_at IS NOT NULL,
         v.active, a.revoked_at IS NOT NULL, sum(v.d)
  FROM assignments a JOIN (SELECT OLD.active AS active, -1 AS d
                           UNION ALL SELECT NEW.active, 1) AS v
  WHERE a.org_id = NEW.org_id AND a.subject_type = '{kind}' AND a.subject_id = NEW.id
    AND (a.revoked_at IS NULL OR NOT EXISTS (SELECT 1 FROM assignments b WHERE {NEWER}))
  GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING sum(v.d) <> 0
  ON CONFLICT ({KEY}) DO UPDATE SET n = n + excluded.n;
END""")


def _lite_downgrade() -> None:
    for name in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS assignment_counts_{name}")
    for table in SUBJECT_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_counts_active")


# ---- fill ------------------------------------------------------------------------------------

FILL = f"""
INSERT INTO assignment_counts ({KEY}, n)
SELECT a.org_id, a.certification_id, a.status, a.required, a.exempt_at IS NOT NULL,
       NOT EXISTS (SELECT 1 FROM ({PG_INACTIVE}) i WHERE i.org_id = a.org_id
                   AND i.id = a.subject_id),
       a.revoked_at IS NOT NULL,
       count(*)
FROM assignments a
WHERE a.revoked_at IS NULL OR NOT EXISTS (SELECT 1 FROM assignments b WHERE {NEWER})
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
FILL_TABLES = ("assignments", "assignment_counts", *SUBJECT_TABLES)


def _fill() -> None:
    bind = op.get_bind()
    sql = FILL if bind.dialect.name == "postgresql" else FILL.replace("IS false", "= 0")
    if bind.dialect.name != "postgresql":
        bind.execute(sa.text(sql))
        return
    # FORCE row-level security binds the owner too: lift it for this one statement, inside
    # the migration's transaction (no other session sees the tables without it).
    for table in FILL_TABLES:
        bind.execute(sa.text(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY"))
    try:
        bind.execute(sa.text(sql))
    finally:
        for table in FILL_TABLES:
            bind.execute(sa.text(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY"))


def upgrade() -> None:
    op.create_table(
        "assignment_counts",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("certification_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("exempt", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("n", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_assignment_counts_org_id_organizations")
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "certification_id"],
            ["certifications.org_id", "certifications.id"],
            name=op.f("fk_assignment_counts_org_id_certification_id_certifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "org_id",
            "certification_id",
            "status",
            "required",
            "exempt",
            "active",
            "revoked",
            name=op.f("pk_assignment_counts"),
        ),
    )
    rls.enable("assignment_counts")
    if op.get_bind().dialect.name == "postgresql":
        _pg_upgrade()
    else:
        _lite_upgrade()
    _fill()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _pg_downgrade()
    else:
        _lite_downgrade()
    rls.disable("assignment_counts")
    op.drop_table("assignment_counts")
