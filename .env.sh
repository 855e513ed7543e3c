source /work/wt/nightly/.venv/bin/activate
export UUID_FORGE_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/t_nightly
export UUID_FORGE_TEST_MARIADB_URL=mysql+pymysql://root@127.0.0.1:3306/t_nightly
export UUID_FORGE_TEST_REDIS_URL=redis://127.0.0.1:6379/3
export UUID_FORGE_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/v_nightly
unset UUID_FORGE_TEST_MONGODB_URL UUID_FORGE_TEST_ELASTICSEARCH_URL
cd /work/wt/nightly
