// Read arrays of a zarr v3 store with zarrita (the JavaScript zarr library) and print them as JSON:
//   node read_store.mjs STORE PATH [PATH ...]     (PATH: an array inside the store, e.g. rank, analysis/rank_prob)
// Output: {"PATH": {"data_type": ..., "shape": [...], "data": [... flat, C order ...]}, ...}; NaN prints as null.
import { FileSystemStore } from "@zarrita/storage";
import * as zarr from "zarrita";

const [storePath, ...paths] = process.argv.slice(2);
const root = zarr.root(new FileSystemStore(storePath));
const out = {};
for (const path of paths) {
  const arr = await zarr.open(root.resolve(path), { kind: "array" });
  const chunk = await zarr.get(arr);
  out[path] = { data_type: arr.dtype, shape: chunk.shape, data: Array.from(chunk.data, (v) => (typeof v === "bigint" ? Number(v) : v)) };
}
process.stdout.write(JSON.stringify(out));
