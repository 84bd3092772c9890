-- Run once, by the postgres image's entrypoint, when the data volume is first initialised
-- (as $POSTGRES_USER, who owns what it creates). Two databases: gapsweep (the results database,
-- migrated by the db-migrate service) and mlflow (the MLflow server's backend store, which MLflow
-- migrates itself). Idempotent: the entrypoint may already have made one of them as POSTGRES_DB.
SELECT 'CREATE DATABASE gapsweep'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'gapsweep')\gexec
SELECT 'CREATE DATABASE mlflow'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mlflow')\gexec
