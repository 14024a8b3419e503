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
// Asking first for the key with fewer candidates (two binary searches of the indexes) returns
// the same row among the few rows of one instance, and still through the RowKey index when one
// partition holds most of the table (a single instance's 100,000-event history). Nothing else
// changes: the same rows, answers, errors and files.
const fs = require("fs");
const path = require("path");

function candidates(collection, key, value) {
  const [first, last] = collection.calculateRange("$eq", key, value);
  return last - first + 1;
}

try {
  const main = fs.realpathSync(process.argv[1]);
  const Loki = require(require.resolve("lokijs", { paths: [path.dirname(main)] }));
  const findOne = Loki.Collection.prototype.findOne;
  Loki.Collection.prototype.findOne = function (query) {
    if (
      query &&
      typeof query.RowKey === "string" &&
      typeof query.PartitionKey === "string" &&
      this.binaryIndices.RowKey &&
      this.binaryIndices.PartitionKey
    ) {
      if (this.adaptiveBinaryIndices !== true) {
        this.ensureIndex("RowKey"); // as LokiJS's own find does before it uses an index
        this.ensureIndex("PartitionKey");
      }
      const { PartitionKey, RowKey, ...rest } = query;
      const byPartition =
        candidates(this, "PartitionKey", PartitionKey) < candidates(this, "RowKey", RowKey);
      query = byPartition ? { PartitionKey, RowKey, ...rest } : { RowKey, PartitionKey, ...rest };
    }
    return findOne.call(this, query);
  };
} catch (err) {
  // Azurite works as well without it, only slower once a task hub holds thousands of instances.
  process.stderr.write(`Azurite row lookups left by RowKey first: ${err && err.message}\n`);
}
