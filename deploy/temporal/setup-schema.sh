#!/bin/sh
# One-shot: creates Temporal's two PostgreSQL databases (persistence and visibility) and brings
# their schemas up to the versions shipped in this admin-tools image. Safe to run again: a database
# that exists already keeps its schema, and update-schema only applies the versions it lacks.
set -eu
export SQL_PASSWORD="$POSTGRES_PASSWORD"
sql() { temporal-sql-tool --plugin postgres12 --ep postgres -p 5432 -u "$POSTGRES_USER" "$@"; }
schemas=/etc/temporal/schema/postgresql/v12
for db in temporal:temporal temporal_visibility:visibility; do
  name=${db%%:*}
  dir=${db#*:}
  if sql --db "$name" create; then
    sql --db "$name" setup-schema -v 0.0
  else
    echo "database $name exists"
  fi
  sql --db "$name" update-schema -d "$schemas/$dir/versioned"
done
echo "Temporal schemas are up to date"
