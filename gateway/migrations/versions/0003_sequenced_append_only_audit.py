"""sequenced, append-only audit log

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Events are inserted in the action's transaction without a position; a sequencer gives
them dense positions in batches (audit_log) and keeps the Merkle frontier in
audit_head. Existing events keep their positions. Triggers make audit_events and
audit_log insert-only on PostgreSQL and SQLite.
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from audit.merkle import RootBuilder

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

OLD_INDEXES = ('ix_audit_events_action', 'ix_audit_events_actor_id',
               'ix_audit_events_dataset_id', 'ix_audit_events_object_id',
               'ix_audit_events_time')
SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
PROTECTED = ('audit_events', 'audit_log', 'audit_checkpoints')


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        for name in OLD_INDEXES:
            batch_op.drop_index(name)
    op.rename_table('audit_events', 'audit_events_v1')
    op.create_table(
        'audit_events',
        sa.Column('seq', SEQ, primary_key=True, autoincrement=True),
        sa.Column('event_id', sa.String(length=32), nullable=False, unique=True),
        sa.Column('time', sa.String(length=32), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('outcome', sa.String(length=8), nullable=False),
        sa.Column('actor_id', sa.String(length=64), nullable=True),
        sa.Column('object_id', sa.String(length=64), nullable=True),
        sa.Column('dataset_id', sa.String(length=64), nullable=True),
        sa.Column('entry', sa.Text(), nullable=False),
        sa.Column('leaf_hash', sa.String(length=64), nullable=False),
    )
    for name in OLD_INDEXES:
        op.create_index(name, 'audit_events', [name.removeprefix('ix_audit_events_')])
    op.create_table('audit_pending', sa.Column('seq', SEQ, primary_key=True,
                                               autoincrement=False))
    op.create_table(
        'audit_log',
        sa.Column('position', sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column('seq', SEQ, sa.ForeignKey('audit_events.seq'), nullable=False, unique=True),
        sa.Column('leaf_hash', sa.String(length=64), nullable=False),
    )
    op.create_table(
        'audit_checkpoints',
        sa.Column('id', SEQ, primary_key=True, autoincrement=True),
        sa.Column('size', sa.BigInteger(), nullable=False, index=True),
        sa.Column('root', sa.String(length=64), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('created_at', sa.String(length=32), nullable=False),
    )
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.add_column(sa.Column('frontier', sa.Text(), nullable=False,
                                      server_default='[]'))
    _copy_old_events()
    op.drop_table('audit_events_v1')
    _append_only()


def _copy_old_events() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        'SELECT position, event_id, time, action, outcome, actor_id, object_id, dataset_id,'
        ' entry, leaf_hash FROM audit_events_v1 ORDER BY position')).mappings().all()
    tree = RootBuilder()
    for row in rows:
        values = dict(row)
        position = values.pop('position')
        conn.execute(sa.text(
            'INSERT INTO audit_events (seq, event_id, time, action, outcome, actor_id,'
            ' object_id, dataset_id, entry, leaf_hash) VALUES (:seq, :event_id, :time,'
            ' :action, :outcome, :actor_id, :object_id, :dataset_id, :entry, :leaf_hash)'),
            {**values, 'seq': position + 1})
        conn.execute(sa.text('INSERT INTO audit_log (position, seq, leaf_hash)'
                             ' VALUES (:p, :s, :h)'),
                     {'p': position, 's': position + 1, 'h': values['leaf_hash']})
        tree.append(bytes.fromhex(values['leaf_hash']))
    conn.execute(sa.text('UPDATE audit_head SET frontier = :f, size = :n WHERE id = 1'),
                 {'f': json.dumps(tree.state()), 'n': len(rows)})
    if rows and conn.dialect.name == 'postgresql':
        conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('audit_events', 'seq'),"
                             ' (SELECT max(seq) FROM audit_events))'))


def _append_only() -> None:
    """Refuse changes to history; enqueue each new event for the sequencer (no extra
    round trip for the writer)."""
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(
            "CREATE FUNCTION audit_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN INSERT INTO audit_pending (seq) VALUES (NEW.seq); RETURN NULL; END $$")
        op.execute('CREATE TRIGGER audit_events_enqueue AFTER INSERT ON audit_events'
                   ' FOR EACH ROW EXECUTE FUNCTION audit_enqueue()')
        op.execute(
            "CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION 'the audit log is append-only (% on %)',"
            " TG_OP, TG_TABLE_NAME; END $$")
        for table in PROTECTED:
            op.execute(f'CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON'
                       f' {table} FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()')
            op.execute(f'CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()')
            op.execute(f'REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM PUBLIC')
        return
    op.execute('CREATE TRIGGER audit_events_enqueue AFTER INSERT ON audit_events'
               ' BEGIN INSERT INTO audit_pending (seq) VALUES (NEW.seq); END')
    for table in PROTECTED:
        for verb in ('UPDATE', 'DELETE'):
            op.execute(f'CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table}'
                       " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END")


def downgrade() -> None:
    raise NotImplementedError('the audit log is append-only; restore from a backup instead')
