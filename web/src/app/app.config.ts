import {
  type ApplicationConfig,
  type EnvironmentProviders,
  type Provider,
  inject,
  provideAppInitializer,
  provideBrowserGlobalErrorListeners,
  provideZonelessChangeDetection,
} from '@angular/core';
import { provideHttpClient } from '@angular/common/http';
import { provideRouter, withComponentInputBinding } from '@angular/router';
import { AbstractSecurityStorage, DefaultLocalStorageService, LogLevel, provideAuth } from 'angular-auth-oidc-client';

import { routes } from './app.routes';
import { SessionService } from './auth/session.service';
import { APP_CONFIG, type AppConfig } from './config';

export function appConfig(config: AppConfig): ApplicationConfig {
  const providers: (Provider | EnvironmentProviders)[] = [
    provideBrowserGlobalErrorListeners(),
    provideZonelessChangeDetection(),
    provideRouter(routes, withComponentInputBinding()),
    { provide: APP_CONFIG, useValue: config },
    // Finishes an OIDC redirect or restores this tab's session before routing.
    provideAppInitializer(() => inject(SessionService).init()),
  ];
  if (config.oidc) {
    const origin = window.location.origin;
    providers.push(
      // The library fetches the provider's discovery document and tokens with HttpClient.
      provideHttpClient(),
      provideAuth({
        config: {
          authority: config.oidc.issuer,
          clientId: config.oidc.clientId,
          scope: config.oidc.scope,
          responseType: 'code',
          redirectUrl: `${origin}/signin`,
          postLogoutRedirectUri: `${origin}/signin`,
          silentRenew: true,
          useRefreshToken: true,
          renewTimeBeforeTokenExpiresInSeconds: 30,
          // ID tokens from a refresh carry no (or the first) nonce.
          ignoreNonceAfterRefresh: true,
          // Userinfo is not needed: the email comes from the token.
          autoUserInfo: false,
          // The sign-in page decides where to go after the redirect comes back.
          triggerAuthorizationResultEvent: true,
          logLevel: LogLevel.Warn,
        },
      }),
      // Tokens in localStorage: a new tab of this browser is signed in too.
      { provide: AbstractSecurityStorage, useClass: DefaultLocalStorageService },
    );
  }
  return { providers };
}
