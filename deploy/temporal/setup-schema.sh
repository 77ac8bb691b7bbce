#!/bin/sh
# One-shot: creates Temporal's two PostgreSQL databases (persistence and visibility) and brings
# their schemas up to the versions built into this temporal-sql-tool (its embedded schemas). Safe
# to run again: a database that exists already keeps its schema, and update-schema only applies
# the versions it lacks, which is also how a newer server's schema is applied before it starts.
# In the compose stack the database is the `postgres` service; `meshflow team` runs this same
# script with POSTGRES_HOST, POSTGRES_PORT and TEMPORAL_SQL_TOOL set for its own processes.
set -eu
export SQL_PASSWORD="$POSTGRES_PASSWORD"
sql() {
  "${TEMPORAL_SQL_TOOL:-temporal-sql-tool}" --plugin postgres12 --ep "${POSTGRES_HOST:-postgres}" \
    -p "${POSTGRES_PORT:-5432}" -u "$POSTGRES_USER" "$@"
}
for db in temporal:temporal temporal_visibility:visibility; do
  name=${db%%:*}
  schema=postgresql/v12/${db#*:}
  if sql --db "$name" create; then
    sql --db "$name" setup-schema -v 0.0
  else
    echo "database $name exists"
  fi
  sql --db "$name" update-schema --schema-name "$schema"
done
echo "Temporal schemas are up to date"
