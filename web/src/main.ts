import { bootstrapApplication } from '@angular/platform-browser';

import { App } from './app/app';
import { appConfig } from './app/app.config';
import { loadAppConfig } from './app/config';

// /config.json decides how users sign in (OIDC, dev mode), so it is read before
// anything else starts.
loadAppConfig()
  .then((config) => bootstrapApplication(App, appConfig(config)))
  .catch((err: unknown) => console.error('ramp failed to start', err));
