import { Injectable, inject } from '@angular/core';
import { Code, ConnectError, createClient, type Client, type Interceptor } from '@connectrpc/connect';
import { createGrpcWebTransport } from '@connectrpc/connect-web';

import { FormService } from '../../gen/ramp/v1/form_service_pb';
import { ProcessService } from '../../gen/ramp/v1/process_service_pb';
import { SessionService } from '../auth/session.service';

/**
 * The ramp clients. ramp serves this app from its own port, so the API is on the
 * same origin; calls are gRPC-web in the binary format. Every call carries the
 * session's credentials, read afresh per call so renewed tokens are used at once.
 */
@Injectable({ providedIn: 'root' })
export class RampApi {
  private readonly session = inject(SessionService);

  private readonly auth: Interceptor = (next) => async (req) => {
    const used = await this.session.credential();
    for (const [k, v] of Object.entries(await this.session.authHeaders())) {
      req.header.set(k, v);
    }
    try {
      return await next(req);
    } catch (e) {
      // A unary call refused for its credentials is retried once when the session
      // could be renewed (OIDC refresh). Streams handle this themselves.
      const err = ConnectError.from(e);
      if (err.code === Code.Unauthenticated && !req.stream && (await this.session.renew(used))) {
        for (const [k, v] of Object.entries(await this.session.authHeaders())) {
          req.header.set(k, v);
        }
        return await next(req);
      }
      throw e;
    }
  };

  private readonly transport = createGrpcWebTransport({
    baseUrl: window.location.origin,
    useBinaryFormat: true,
    interceptors: [this.auth],
  });

  readonly processes: Client<typeof ProcessService> = createClient(ProcessService, this.transport);
  readonly forms: Client<typeof FormService> = createClient(FormService, this.transport);
}
