// Qualifies the S3 server the suite runs against for the next issue's commit protocol: a
// create-only PutObject (If-None-Match: *) must be atomic. 16 writers race for one key, 50 rounds:
// exactly one 200 each round, the rest 412 (or 409).
import { PutObjectCommand, S3ServiceException } from '@aws-sdk/client-s3'
import test from 'ava'
import { atomicCreates, client, freshBucket } from './helpers/s3'

// Expected to fail where the server's creates are known not to be atomic.
;(atomicCreates ? test : test.failing)('If-None-Match: * is atomic: one winner per round of 16 concurrent creates', async (t) => {
  const bucket = await freshBucket('qualify')
  const rounds = 50
  const writers = 16
  const tally = { won: 0, lost412: 0, lost409: 0, other: 0 }
  for (let round = 0; round < rounds; round++) {
    const key = `race/${round}`
    const results = await Promise.all(
      Array.from({ length: writers }, (_, w) =>
        client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.from(`writer ${w}`), IfNoneMatch: '*' })).then(
          () => 200,
          (e: S3ServiceException) => e.$metadata?.httpStatusCode ?? -1,
        ),
      ),
    )
    const winners = results.filter((s) => s === 200).length
    tally.won += winners
    tally.lost412 += results.filter((s) => s === 412).length
    tally.lost409 += results.filter((s) => s === 409).length
    tally.other += results.filter((s) => s !== 200 && s !== 412 && s !== 409).length
    t.is(winners, 1, `round ${round}: ${results.join(',')}`)
  }
  t.log(`${rounds} rounds x ${writers} writers:`, tally)
  t.is(tally.other, 0)
})
