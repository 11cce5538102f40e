"""the queue's index covers open tasks only; no index on assignments.annotator_id

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_OPEN = sa.text("slots_left > 0")


def upgrade() -> None:
    op.drop_index('ix_tasks_queue', table_name='tasks')
    op.create_index('ix_tasks_open', 'tasks', ['project_id', 'created_at', 'id'], unique=False,
                    postgresql_where=_OPEN, sqlite_where=_OPEN)
    op.drop_index('ix_assignments_annotator_id', table_name='assignments')


def downgrade() -> None:
    op.create_index('ix_assignments_annotator_id', 'assignments', ['annotator_id'],
                    unique=False)
    op.drop_index('ix_tasks_open', table_name='tasks')
    op.create_index('ix_tasks_queue', 'tasks', ['project_id', 'created_at', 'id'], unique=False)
