import { inject } from '@angular/core';
import { type CanActivateFn, Router } from '@angular/router';

import { SessionService } from './session.service';

/** Lets signed-in users through; sends others to /signin and back afterwards. */
export const signedIn: CanActivateFn = (_route, state) => {
  if (inject(SessionService).signedIn()) {
    return true;
  }
  return inject(Router).createUrlTree(['/signin'], { queryParams: { returnUrl: state.url } });
};
