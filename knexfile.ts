import { loadConfig } from './src/config';
import { knexConfig } from './src/db/knex';

// Used by `npm run migrate` (the Procfile's release step); it needs DATABASE_URL.
const { DATABASE_URL } = loadConfig();
if (!DATABASE_URL) throw new Error('DATABASE_URL must be set to run migrations');

export default knexConfig(DATABASE_URL);
