import { generateKeyPairSync } from "node:crypto";
import { generate } from "selfsigned";
import type { TlsMaterial } from "./device-server.js";

/**
 * Self-signed certificates like the devices' own. Real devices each carry their own; the simulator issues
 * one per model (sharing one EC key) so that 2,000 devices start in seconds rather than minutes.
 */
export class CertificateStore {
  private readonly key = generateKeyPairSync("ec", {
    namedCurve: "P-256",
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  private readonly byModel = new Map<string, Promise<TlsMaterial>>();

  forModel(model: string): Promise<TlsMaterial> {
    let cert = this.byModel.get(model);
    if (!cert) {
      cert = generate(
        [
          { name: "commonName", value: `Polycom ${model}` },
          { name: "organizationName", value: "Polycom" },
        ],
        {
          keyType: "ec",
          algorithm: "sha256",
          keyPair: { privateKey: this.key.privateKey, publicKey: this.key.publicKey },
          notAfterDate: new Date(Date.now() + 10 * 365 * 86_400_000),
        },
      ).then((pems) => ({ key: pems.private, cert: pems.cert }));
      this.byModel.set(model, cert);
    }
    return cert;
  }
}
