-- One database per engine (each engine owns its data: DESIGN §1), created on the PostgreSQL
-- container's first start (docker-compose.yml mounts this in /docker-entrypoint-initdb.d).
-- The engines create their tables themselves (migrations at start).
CREATE DATABASE infostore;
CREATE DATABASE segmentation;
CREATE DATABASE personalisation;
CREATE DATABASE broadcast;
CREATE DATABASE transaction;
