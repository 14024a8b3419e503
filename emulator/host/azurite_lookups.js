"use strict";
// Loaded into the Azurite the emulator starts (`node --require`, see emulator/host/_azurite.py).
//
// Azurite keeps each table in a LokiJS collection indexed on PartitionKey and on RowKey, and
// finds a row with findOne({RowKey, PartitionKey}). LokiJS answers a query of two keys with the
// index of the first and then tests every candidate against the second, so each lookup walks
// every row of the table that shares its RowKey. In the Durable Task layout that is one row per
// instance: every history uses the RowKeys 0000000000000000, 0000000000000001, ... and every
// Instances row the RowKey "". Every row an episode writes is looked up first, so a task hub's
// writes slowed down in proportion to the instances it holds (docs/performance.md).
//
// Asking for the PartitionKey first returns the same row through the other index, among the few
// rows of one instance. But one instance's history can be the big one (a fan-out of 100,000
// activities writes 200,000 rows into one partition), and then its RowKey is the few rows: so
// the key whose index range is the smaller is asked first (two binary searches per lookup).
// Nothing else changes: the same rows, answers, errors and files.
const fs = require("fs");
const path = require("path");

try {
  const main = fs.realpathSync(process.argv[1]);
  const Loki = require(require.resolve("lokijs", { paths: [path.dirname(main)] }));
  const findOne = Loki.Collection.prototype.findOne;
  // How many rows have this value, from the key's index (Infinity when it cannot say cheaply).
  const candidates = (collection, key, value) => {
    const index = collection.binaryIndices && collection.binaryIndices[key];
    if (!index || index.dirty || typeof value !== "string") return Infinity;
    const [low, high] = collection.calculateRange("$eq", key, value);
    return high - low + 1;
  };
  Loki.Collection.prototype.findOne = function (query) {
    if (query && typeof query === "object" && "RowKey" in query && "PartitionKey" in query) {
      const { PartitionKey, RowKey, ...rest } = query;
      const byRowKey = candidates(this, "RowKey", RowKey) < candidates(this, "PartitionKey", PartitionKey);
      query = byRowKey ? { RowKey, PartitionKey, ...rest } : { PartitionKey, RowKey, ...rest };
    }
    return findOne.call(this, query);
  };
} catch (err) {
  // Azurite works as well without it, only slower once a task hub holds thousands of instances.
  process.stderr.write(`Azurite row lookups left by RowKey first: ${err && err.message}\n`);
}
