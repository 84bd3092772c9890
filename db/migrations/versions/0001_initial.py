"""initial schema: sweeps, configurations, runs, metrics, snapshots

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 13:15:53.959036
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sweeps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('experiment', sa.String(length=200), nullable=False),
    sa.Column('spec_yaml', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('submitted_host', sa.String(length=255), nullable=True),
    sa.Column('submitted_by', sa.String(length=255), nullable=True),
    sa.Column('code_version', sa.String(length=64), nullable=True),
    sa.CheckConstraint("status IN ('registered', 'running', 'finished', 'failed', 'interrupted')", name=op.f('ck_sweeps_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sweeps')),
    sa.UniqueConstraint('name', name=op.f('uq_sweeps_name'))
    )
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sweeps_experiment'), ['experiment'], unique=False)

    op.create_table('configurations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sweep_id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('config_hash', sa.String(length=64), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('algorithm', sa.String(length=40), nullable=False),
    sa.Column('hidden_size', sa.Integer(), nullable=True),
    sa.Column('learning_rate', sa.Float(), nullable=True),
    sa.Column('train_steps', sa.Integer(), nullable=True),
    sa.Column('use_edge_info', sa.Boolean(), nullable=True),
    sa.Column('use_pre_att_bias', sa.Boolean(), nullable=True),
    sa.Column('simplify_decoders', sa.Boolean(), nullable=True),
    sa.Column('regularization', sa.Boolean(), nullable=True),
    sa.Column('length_generalize', sa.Boolean(), nullable=True),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], name=op.f('fk_configurations_sweep_id_sweeps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_configurations')),
    sa.UniqueConstraint('sweep_id', 'config_hash', name=op.f('uq_configurations_sweep_id_config_hash')),
    sa.UniqueConstraint('sweep_id', 'label', name=op.f('uq_configurations_sweep_id_label'))
    )
    with op.batch_alter_table('configurations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_configurations_algorithm'), ['algorithm'], unique=False)
        batch_op.create_index(batch_op.f('ix_configurations_config_hash'), ['config_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_configurations_regularization'), ['regularization'], unique=False)
        batch_op.create_index(batch_op.f('ix_configurations_simplify_decoders'), ['simplify_decoders'], unique=False)
        batch_op.create_index(batch_op.f('ix_configurations_use_edge_info'), ['use_edge_info'], unique=False)
        batch_op.create_index(batch_op.f('ix_configurations_use_pre_att_bias'), ['use_pre_att_bias'], unique=False)

    op.create_table('runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('configuration_id', sa.Integer(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('worker_host', sa.String(length=255), nullable=True),
    sa.Column('device', sa.String(length=255), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('wall_seconds', sa.Float(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('best_step', sa.Integer(), nullable=True),
    sa.Column('best_val_score', sa.Float(), nullable=True),
    sa.Column('test_score', sa.Float(), nullable=True),
    sa.Column('final_step', sa.Integer(), nullable=True),
    sa.Column('diverged_step', sa.Integer(), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'running', 'done', 'failed', 'diverged')", name=op.f('ck_runs_status')),
    sa.ForeignKeyConstraint(['configuration_id'], ['configurations.id'], name=op.f('fk_runs_configuration_id_configurations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs')),
    sa.UniqueConstraint('configuration_id', 'seed', name=op.f('uq_runs_configuration_id_seed'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runs_configuration_id_status'), ['configuration_id', 'status'], unique=False)

    op.create_table('metrics',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('split', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.CheckConstraint("split IN ('train', 'val', 'test')", name=op.f('ck_metrics_split')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_metrics_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'split', 'name', 'step', name=op.f('pk_metrics'))
    )
    op.create_table('snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('byte_size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=True),
    sa.Column('uri', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('best', 'final', 'init', 'compiled')", name=op.f('ck_snapshots_kind')),
    sa.CheckConstraint('(payload IS NULL) <> (uri IS NULL)', name=op.f('ck_snapshots_one_location')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_snapshots_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_snapshots')),
    sa.UniqueConstraint('run_id', 'kind', name=op.f('uq_snapshots_run_id_kind'))
    )


def downgrade() -> None:
    op.drop_table('snapshots')
    op.drop_table('metrics')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_configuration_id_status'))

    op.drop_table('runs')
    with op.batch_alter_table('configurations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_configurations_use_pre_att_bias'))
        batch_op.drop_index(batch_op.f('ix_configurations_use_edge_info'))
        batch_op.drop_index(batch_op.f('ix_configurations_simplify_decoders'))
        batch_op.drop_index(batch_op.f('ix_configurations_regularization'))
        batch_op.drop_index(batch_op.f('ix_configurations_config_hash'))
        batch_op.drop_index(batch_op.f('ix_configurations_algorithm'))

    op.drop_table('configurations')
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sweeps_experiment'))

    op.drop_table('sweeps')
