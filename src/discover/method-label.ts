/**
 * How a scan file's method is shown (report titles and captions, faithfulness's `scores_method`):
 * edge `ig` along activations is told apart from `ig` along the inputs, MIB's usual one and the
 * default, which keeps the plain name.
 */
export function scanMethodLabel(method: string, igPath: unknown): string {
  return method === 'ig' && igPath === 'activations' ? 'ig (activations)' : method;
}
