"""pseudonym mappings

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

A DICOM item's old -> new patient id pairs are sealed as a blob of kind "mapping" (the
original ids are identifying: encrypted like an original, shredded with the dataset);
items.mapping_id points at it. The mapping export opens them for holders of mapping:read.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mapping_id', sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_items_mapping_id_sealed_blobs'),
                                    'sealed_blobs', ['mapping_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_items_mapping_id_sealed_blobs'),
                                 type_='foreignkey')
        batch_op.drop_column('mapping_id')
