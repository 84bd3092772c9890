"""tracking_outbox: finished runs that MLflow does not show yet

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 10:00:00

Every run already finished is put in the outbox: a database from before this revision says
nothing of what its MLflow has, and replaying a run MLflow already shows logs nothing twice
(seeds with a child run are skipped), so the next tracked run checks them all once.
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'tracking_outbox',
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE',
                                name=op.f('fk_tracking_outbox_run_id_runs')),
        sa.PrimaryKeyConstraint('run_id', name=op.f('pk_tracking_outbox')),
    )
    op.execute("INSERT INTO tracking_outbox (run_id, created_at) "
               "SELECT id, COALESCE(finished_at, CURRENT_TIMESTAMP) FROM runs "
               "WHERE status IN ('done', 'diverged')")


def downgrade() -> None:
    op.drop_table('tracking_outbox')
