"""runs: the numerical canary of the task that trained the run

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 22:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('canary', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('canary_deviation', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('canary_seconds', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('canary_seconds')
        batch_op.drop_column('canary_deviation')
        batch_op.drop_column('canary')
