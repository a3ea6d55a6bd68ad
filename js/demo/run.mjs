// `npm --prefix js run demo`: starts hush on its embedded defaults (unless HUSH_URL names a
// running one, e.g. HUSH_URL=http://127.0.0.1:6001 for `cargo run -p hush -- serve`) and the
// clinic backend, then prints the URL to open (once as the doctor, once as the patient, e.g.
// in a normal and a private window).
import { DEV_APP, startHush } from '../lib/hush.mjs';
import { startDemo } from './server.mjs';

let hush;
let stopHush = async () => {};
if (process.env.HUSH_URL) {
  const u = new URL(process.env.HUSH_URL);
  hush = { host: u.hostname, port: Number(u.port || 80) };
} else {
  const h = await startHush();
  hush = h;
  stopHush = () => h.stop();
}
const app = {
  id: process.env.HUSH_APP_ID || DEV_APP.id,
  key: process.env.HUSH_APP_KEY || DEV_APP.key,
  secret: process.env.HUSH_APP_SECRET || DEV_APP.secret,
};
const demo = await startDemo({ hush, app, port: Number(process.env.PORT || 8080) });
console.log(`hush on ${hush.host}:${hush.port}`);
console.log(`clinic demo on ${demo.url}  (sign in as "doctor" in one window, "patient" in another)`);
const stop = async () => {
  await demo.close();
  await stopHush();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
