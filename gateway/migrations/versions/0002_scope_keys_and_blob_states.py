"""scope keys and blob states

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

The key hierarchy (KEK -> per-dataset scope key -> per-object data key) and blob
states (pending -> stored -> destroyed) for orphan collection and retention.
Blobs sealed under 0001 (data keys wrapped directly by the KEK) predate any release.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scope_keys',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('scope_id', sa.String(length=64), nullable=False),
    sa.Column('kek_id', sa.String(length=200), nullable=False),
    sa.Column('wrapped', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rewrapped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('destroyed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scope_keys'))
    )
    with op.batch_alter_table('scope_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scope_keys_scope_id'), ['scope_id'], unique=False)

    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('sealed_blobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.String(length=16), nullable=False,
                                      server_default='stored'))
        batch_op.add_column(sa.Column('destroyed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_sealed_blobs_state'), ['state'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('sealed_blobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sealed_blobs_state'))
        batch_op.drop_column('destroyed_at')
        batch_op.drop_column('state')

    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_column('erased_at')

    with op.batch_alter_table('scope_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scope_keys_scope_id'))

    op.drop_table('scope_keys')
